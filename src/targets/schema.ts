import { Type, type Static } from '@sinclair/typebox';
import type { IsaFeature } from '../types.js';

// One schema per document: the Target type, its defaults and its validation all come from here.

export const ISA_FEATURES = [
  'neon', 'dotprod', 'i8mm', 'fp16', 'bf16', 'sve',
  'sse4_2', 'avx', 'avx2', 'fma', 'avx512', 'vnni', 'amx',
] as const satisfies readonly IsaFeature[];
// Fails to compile if IsaFeature gains a name this list lacks.
const _allIsa: Exclude<IsaFeature, (typeof ISA_FEATURES)[number]> extends never ? true : never = true;
void _allIsa;

const Isa = Type.Union(ISA_FEATURES.map((f) => Type.Literal(f)));

/** Node's names for the architectures onnxruntime-node ships CPU binaries for (plus 32-bit arm, to say no). */
export const TargetArchSchema = Type.Union([Type.Literal('x64'), Type.Literal('arm64'), Type.Literal('arm')]);

const GraphOpt = Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all')]);

const Threads = Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal('all')]);

export const TargetMatchSchema = Type.Object(
  {
    arch: Type.Optional(Type.Array(TargetArchSchema, { minItems: 1 })),
    /** Any of these substrings (case-insensitive) in the profile's board name. */
    boardIncludes: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    isaAll: Type.Optional(Type.Array(Isa)),
    isaNone: Type.Optional(Type.Array(Isa)),
  },
  { additionalProperties: false },
);

export const TargetSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]*$' }),
    match: TargetMatchSchema,
    /** The arches for which this target is the last resort when nothing matches (see match.ts). */
    fallbackFor: Type.Optional(Type.Array(TargetArchSchema)),
    notes: Type.String(),
    defaults: Type.Object(
      {
        threads: Threads,
        /** int8 activations: 'uint8' (U8S8) where the CPU's int8 kernels want it, 'int8' (S8S8) otherwise. */
        activationType: Type.Optional(Type.Union([Type.Literal('int8'), Type.Literal('uint8')])),
        /** 7-bit weights: x86 without VNNI saturates vpmaddubsw on full-range u8×s8 products. */
        reduceRange: Type.Optional(Type.Boolean()),
        perChannel: Type.Optional(Type.Boolean()),
        /** MatMulNBits accuracy_level for weight-only models (4 = int8 compute, fast with dotprod/i8mm/VNNI). */
        weightOnlyAccuracyLevel: Type.Optional(Type.Integer({ minimum: 0, maximum: 4 })),
        graphOptimizationLevel: Type.Optional(GraphOpt),
        spinning: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
    space: Type.Object(
      {
        /**
         * Weight formats worth measuring here (src/tune/space.ts reads this list). fp16 means fp16 weight
         * *storage*: compute stays fp32, so it buys size, not speed, on CPUs.
         */
        quant: Type.Array(Type.Union([Type.Literal('fp32'), Type.Literal('dynamic'), Type.Literal('fp16')]), {
          minItems: 1,
          uniqueItems: true,
        }),
        threads: Type.Array(Threads, { minItems: 1, uniqueItems: true }),
        /** Calibrated static int8 (QDQ) is worth trying (needs calibration data). */
        staticInt8: Type.Optional(Type.Boolean()),
        /** Weight-only bit widths worth trying (MatMulNBits); absent or [] = none. */
        weightOnlyBits: Type.Optional(Type.Array(Type.Union([Type.Literal(4), Type.Literal(8)]), { uniqueItems: true })),
        /** Channel-pruning ratios worth trying besides none (dense, so it speeds every CPU up). */
        prune: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 0.95 }), { uniqueItems: true })),
        /** Low-rank energies worth trying besides none. */
        lowrankEnergy: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), { uniqueItems: true })),
        graphOptimizationLevel: Type.Optional(Type.Array(GraphOpt, { minItems: 1, uniqueItems: true })),
        spinning: Type.Optional(Type.Array(Type.Boolean(), { minItems: 1, uniqueItems: true })),
      },
      { additionalProperties: false },
    ),
    /**
     * Expectations the tuner may use to order trials. Known keys: `int8Gain` ('none' | 'low' | 'medium' |
     * 'high': what dynamic int8 is expected to buy over fp32 from the kernels this CPU gets), `fp16Compute`
     * ('slower': fp16 weights run through Casts on the CPU EP), `fp16ComputeSlowdown` (measured ×),
     * `cpuMaxMHz`, `cores`, `fp32FlopsPerCycle` and `int8OpsPerCycle` (per core, peak; see priors.ts for the
     * derived peak throughput). Facts only, each sourced; a fact not known is left out, never guessed.
     */
    priors: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
    sources: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type Target = Static<typeof TargetSchema>;
export type TargetMatch = Static<typeof TargetMatchSchema>;
export type TargetArch = Static<typeof TargetArchSchema>;
