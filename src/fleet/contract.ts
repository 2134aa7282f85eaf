// The job parameters the fleet controller sends, as schemas. The agent owns its handlers (src/agent/); these
// say what the controller relies on, the simulator validates against them, and docs/fleet.md explains them.
import { Type, type Static } from '@sinclair/typebox';
import { RecipeSchema } from '../schema/recipe.js';

const Percentile = Type.Union([Type.Literal(50), Type.Literal(90), Type.Literal(95), Type.Literal(99)], { default: 90 });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });

/**
 * `tune`, as the agent already takes it, plus `candidates` for distributed tuning: measure exactly these
 * recipes, report them as `trials` in the same order, write no model (a share's local winner means nothing).
 * fp32 is still run once as the fidelity reference when it is not in the list, but not reported as a trial.
 */
export const FleetTuneParamsSchema = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    budgetMs: Type.Number({ exclusiveMinimum: 0 }),
    percentile: Percentile,
    memoryMB: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    candidates: Type.Optional(Type.Array(RecipeSchema, { minItems: 1, maxItems: 1024 })),
  },
  { additionalProperties: false },
);
export type FleetTuneParams = Static<typeof FleetTuneParamsSchema>;

/** `bench`: measure `model` (with `recipe` applied first, when given) → a Measurement. */
export const BenchParamsSchema = Type.Object(
  { model: Type.String({ minLength: 1 }), recipe: Type.Optional(RecipeSchema) },
  { additionalProperties: false },
);
export type BenchParams = Static<typeof BenchParamsSchema>;

/**
 * `deploy`: make `model` (compressed with `recipe` on the device when given) the one that runs, keeping the
 * current one as `previous`; refuse when `sha256` is given and the file's differs. The result is
 * `{v, deployed: <deployed doc>}` and the retained `{base}/deployed` is republished.
 */
export const DeployParamsSchema = Type.Object(
  { model: Type.String({ minLength: 1 }), recipe: Type.Optional(RecipeSchema), sha256: Type.Optional(Sha256) },
  { additionalProperties: false },
);
export type DeployParams = Static<typeof DeployParamsSchema>;

/** `rollback`: reactivate `previous`; fails (FAILED, not SUCCEEDED) when there is none. */
export const RollbackParamsSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);

/** The retained `{base}/deployed` document (DESIGN.md §5): what runs now, since when, and what ran before. */
export interface DeployedDoc {
  v: 1;
  model: { sha256: string; path?: string };
  recipe?: Static<typeof RecipeSchema>;
  since: string;
  previous?: { model: { sha256: string; path?: string }; recipe?: Static<typeof RecipeSchema>; since: string };
  simulated?: true;
}
