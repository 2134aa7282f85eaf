// The job parameters the fleet controller sends are the agent's own schemas (src/agent/params.ts), re-exported:
// the controller, the simulator and a real device validate against the same documents, so nothing the controller
// sends can be accepted by a simulated device and refused by a real one. docs/fleet.md explains them.
import type { Static } from '@sinclair/typebox';
import type { RecipeSchema } from '../schema/recipe.js';

export {
  BenchParamsSchema, DeployParamsSchema, RollbackParamsSchema, TuneParamsSchema,
  type BenchParams, type DeployParams, type RollbackParams, type TuneParams,
} from '../agent/params.js';

/** The retained `{base}/deployed` document (DESIGN.md §5) as the controller reads it: leniently, fields optional. */
export interface DeployedDoc {
  v: 1;
  model: { sha256: string; path?: string };
  recipe?: Static<typeof RecipeSchema>;
  since: string;
  previous?: { model: { sha256: string; path?: string }; recipe?: Static<typeof RecipeSchema>; since: string };
  simulated?: true;
}
