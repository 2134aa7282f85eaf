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
    defaults: Type.Object({ threads: Threads }, { additionalProperties: false }),
    space: Type.Object(
      {
        /** Which weight formats are worth measuring here; fp16 is for size only on CPUs. */
        quant: Type.Array(Type.Union([Type.Literal('fp32'), Type.Literal('dynamic'), Type.Literal('fp16')]), {
          minItems: 1,
          uniqueItems: true,
        }),
        threads: Type.Array(Threads, { minItems: 1, uniqueItems: true }),
      },
      { additionalProperties: false },
    ),
    /**
     * Expectations the tuner may use to order trials. Known keys: `int8Gain` ('none' | 'low' | 'medium' |
     * 'high': what dynamic int8 is expected to buy over fp32 from the kernels this CPU gets), `fp16Compute`
     * ('slower': fp16 weights run through Casts on the CPU EP), `cpuMaxMHz`, `cores`. Facts only, each sourced.
     */
    priors: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
    sources: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type Target = Static<typeof TargetSchema>;
export type TargetMatch = Static<typeof TargetMatchSchema>;
export type TargetArch = Static<typeof TargetArchSchema>;
