// The parameters of every job type the agent runs, as schemas: the one place that says what a job may carry.
// The agent's handlers validate against them; the fleet controller (src/fleet/contract.ts) and the simulator
// re-export them, so a controller can never rely on a field a real device would refuse.
import { Type, type Static } from '@sinclair/typebox';
import { RecipeSchema } from '../schema/recipe.js';
import { TOPIC_LEVEL_PATTERN } from '../schema/config.js';
import { SpaceFileSchema } from '../tune/space.js';

/** Sizes for a model's dynamic input dims, as the CLI's --shape: {"x": [1, 3, 224, 224]}. */
const ShapesSchema = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Array(Type.Integer({ minimum: 1, maximum: 1 << 20 }), { minItems: 1, maxItems: 8 }), {
  description: "input shapes for a model's dynamic dims, as --shape: {\"x\": [1, 3, 224, 224]}",
});

const Percentile = Type.Union([Type.Literal(50), Type.Literal(90), Type.Literal(95), Type.Literal(99)], { default: 90 });

export const ProfileParamsSchema = Type.Object({}, { additionalProperties: false });

/**
 * `tune`. With `candidates` (a share of a distributed tune): measure exactly those recipes, report them as
 * `trials`, write no model; fp32 runs once as the fidelity reference when the list lacks it, not as a trial.
 */
export const TuneParamsSchema = Type.Object(
  {
    model: Type.String({ minLength: 1, description: "'examples/…' = the package's examples; other relative paths are under stateDir" }),
    budgetMs: Type.Number({ exclusiveMinimum: 0 }),
    percentile: Percentile,
    memoryMB: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    output: Type.Optional(Type.String({ minLength: 1, description: 'where the chosen model goes; default <stateDir>/tuned/<model>.tuned.onnx' })),
    candidates: Type.Optional(Type.Array(RecipeSchema, { minItems: 1, maxItems: 1024, description: 'measure exactly these recipes (a distributed share)' })),
    // The rest mirror `edgetune tune`'s flags (docs/tuning.md).
    maxAccuracyDrop: Type.Optional(Type.Number({ minimum: 0, description: 'with labelled data: largest accepted accuracy drop in points vs fp32 (default 1)' })),
    minFidelity: Type.Optional(Type.Number({ minimum: -1, maximum: 1, description: 'lowest accepted cosine to the fp32 outputs (default 0.99 without labels)' })),
    data: Type.Optional(Type.String({ minLength: 1, description: "examples for accuracy and calibration: 'examples/…' or a path under stateDir" })),
    evalSamples: Type.Optional(Type.Integer({ minimum: 1, description: 'examples to evaluate quality on (default 1000 from data, 16 generated)' })),
    timeLimitS: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'start no new work after this many seconds, then decide' })),
    strategy: Type.Optional(Type.Union([Type.Literal('adaptive'), Type.Literal('exhaustive')], { description: 'default adaptive' })),
    /** replaces axes of the matched target's space: a --space file's content, checked by the same schema */
    space: Type.Optional(SpaceFileSchema),
    shapes: Type.Optional(ShapesSchema),
  },
  { additionalProperties: false },
);
export type TuneParams = Static<typeof TuneParamsSchema>;

/** A share measures exactly its recipes: the search settings would silently do nothing, so they are refused. */
export const SHARE_IGNORES = ['space', 'strategy', 'timeLimitS'] as const;

export const CompressParamsSchema = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    recipe: RecipeSchema,
    output: Type.Optional(Type.String({ minLength: 1, description: 'default <stateDir>/compressed/<model>.<job>.onnx' })),
    minCosine: Type.Optional(Type.Number({ minimum: -1, maximum: 1 })),
    force: Type.Optional(Type.Boolean()),
    shapes: Type.Optional(ShapesSchema),
  },
  { additionalProperties: false },
);
export type CompressParams = Static<typeof CompressParamsSchema>;

/** `bench`: measure `model` (with `recipe` applied first, when given) → a Measurement. */
export const BenchParamsSchema = Type.Object(
  { model: Type.String({ minLength: 1 }), recipe: Type.Optional(RecipeSchema), maxS: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 600 })), shapes: Type.Optional(ShapesSchema) },
  { additionalProperties: false },
);
export type BenchParams = Static<typeof BenchParamsSchema>;

/** `deploy`: exactly one source, the sha256 of the file as sent, a signature when the device has a key. */
export const DeployParamsSchema = Type.Object(
  {
    model: Type.Optional(Type.String({ minLength: 1, description: "a file on the device: 'examples/…' or a path under stateDir" })),
    url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048, description: 'downloaded with resume' })),
    transfer: Type.Optional(Type.Object(
      {
        id: Type.String({ pattern: TOPIC_LEVEL_PATTERN }),
        chunks: Type.Integer({ minimum: 1, maximum: 100_000 }),
        bytes: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false, description: 'chunks published on {base}/transfer/{id}/{index}' },
    )),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'of the file as sent (before any recipe)' }),
    signature: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', description: 'ed25519 over "edgetune-model-v1:<sha256>", base64' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    recipe: Type.Optional(RecipeSchema),
    budget: Type.Optional(Type.Object({ latencyMs: Type.Number({ exclusiveMinimum: 0 }), percentile: Percentile }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type DeployParams = Static<typeof DeployParamsSchema>;

export const RollbackParamsSchema = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });
export type RollbackParams = Static<typeof RollbackParamsSchema>;
