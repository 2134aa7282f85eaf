import { Type, type Static } from '@sinclair/typebox';

// The recipe contract (DESIGN.md §4): what to do to a model. The pipeline applies prune → lowrank → quantize.
// One schema gives the TypeScript type, the defaults and the validation of recipe files and job parameters.

export const QuantModeSchema = Type.Union([
  Type.Literal('dynamic'), // int8 MatMulInteger/ConvInteger, activations quantized at run time
  Type.Literal('static'), // QDQ with calibrated activation ranges
  Type.Literal('weight-only'), // MatMulNBits (4/8 bit) or int4 DequantizeLinear
  Type.Literal('fp16'), // fp16 weights (storage) or a full fp16 graph
]);

const CalibrationSchema = Type.Object(
  {
    method: Type.Optional(Type.Union([Type.Literal('minmax'), Type.Literal('percentile'), Type.Literal('entropy')], { default: 'percentile' })),
    percentile: Type.Optional(Type.Number({ minimum: 50, maximum: 100, default: 99.999 })),
    samples: Type.Optional(Type.Integer({ minimum: 1, default: 128 })),
    batch: Type.Optional(Type.Integer({ minimum: 1, default: 16 })),
  },
  { additionalProperties: false },
);

const OverrideSchema = Type.Object(
  {
    bits: Type.Optional(Type.Integer({ minimum: 4, maximum: 32, description: '32 = keep fp32' })),
    skip: Type.Optional(Type.Boolean({ description: 'leave this node unquantized' })),
  },
  { additionalProperties: false },
);

export const QuantizeSchema = Type.Object(
  {
    mode: QuantModeSchema,
    bits: Type.Optional(Type.Integer({ minimum: 4, maximum: 16 })),
    /** one scale per output channel; absent: static uses per-channel (opset 13+), dynamic per-tensor */
    perChannel: Type.Optional(Type.Boolean()),
    symmetricWeights: Type.Optional(Type.Boolean({ default: true })),
    /** activations as int8 (S8S8) or uint8 (U8S8); the target decides when absent */
    activationType: Type.Optional(Type.Union([Type.Literal('int8'), Type.Literal('uint8')])),
    /** 7-bit weights for x86 CPUs without VNNI (avoids vpmaddubsw saturation) */
    reduceRange: Type.Optional(Type.Boolean()),
    /**
     * static: quantize depthwise convs (default true). false keeps them fp32: measured faster on PP-OCR cls (1.05×
     * fp32 instead of 0.73×) and PP-OCRv4 det/rec (+5 %), slower on yolox-nano (−6 %); measure with your model.
     */
    depthwise: Type.Optional(Type.Boolean()),
    /** weight-only: block size along K */
    blockSize: Type.Optional(Type.Integer({ minimum: 16, maximum: 256 })),
    /** weight-only: MatMulNBits accuracy_level (4 = int8 compute, the fast one on CPUs) */
    accuracyLevel: Type.Optional(Type.Integer({ minimum: 0, maximum: 4 })),
    /** weight-only: 'matmulnbits' (com.microsoft) or 'dq' (opset-21 int4 DequantizeLinear) */
    format: Type.Optional(Type.Union([Type.Literal('matmulnbits'), Type.Literal('dq')])),
    /** dynamic: also quantize Conv via ConvInteger (slow on most CPUs; only on request) */
    convInteger: Type.Optional(Type.Boolean()),
    /** fp16: convert the whole graph (compute in fp16), keeping fp32 inputs/outputs */
    fullGraph: Type.Optional(Type.Boolean()),
    calibration: Type.Optional(CalibrationSchema),
    /** per node name */
    overrides: Type.Optional(Type.Record(Type.String(), OverrideSchema)),
    /** per op type */
    opOverrides: Type.Optional(Type.Record(Type.String(), OverrideSchema)),
    /** fall back the most sensitive layers to fp32 */
    fallback: Type.Optional(
      Type.Object(
        {
          worstK: Type.Optional(Type.Integer({ minimum: 0 })),
          threshold: Type.Optional(Type.Number({ minimum: 0, description: 'damage above which a layer stays fp32' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PruneSchema = Type.Object(
  {
    method: Type.Union([Type.Literal('magnitude'), Type.Literal('channel')]),
    ratio: Type.Number({ minimum: 0, maximum: 0.95 }),
    importance: Type.Optional(Type.Union([Type.Literal('l1'), Type.Literal('l2')], { default: 'l1' })),
    scope: Type.Optional(Type.Union([Type.Literal('layer'), Type.Literal('global')], { default: 'layer' })),
    reconstruct: Type.Optional(Type.Boolean({ default: false })),
    /** channel counts rounded to a multiple of this for fast kernels */
    multiple: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
    perLayer: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 0.95 }))),
  },
  { additionalProperties: false },
);

export const LowrankSchema = Type.Object(
  {
    energy: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    ratio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    conv1x1: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);

export const SessionSchema = Type.Object(
  {
    intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    interOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    graphOptimizationLevel: Type.Optional(
      Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all')]),
    ),
    executionMode: Type.Optional(Type.Union([Type.Literal('sequential'), Type.Literal('parallel')])),
    /** ORT's thread-pool spinning: fast on an idle device, wasteful on a busy one */
    spinning: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const RecipeSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    prune: Type.Optional(PruneSchema),
    lowrank: Type.Optional(LowrankSchema),
    quantize: Type.Optional(QuantizeSchema),
    exclude: Type.Optional(
      Type.Object(
        { ops: Type.Array(Type.String(), { default: [] }), nodes: Type.Array(Type.String(), { default: [] }) },
        { additionalProperties: false },
      ),
    ),
    session: Type.Optional(SessionSchema),
  },
  { additionalProperties: false },
);

export type Recipe = Static<typeof RecipeSchema>;
export type QuantMode = Static<typeof QuantModeSchema>;
export type QuantizeStep = Static<typeof QuantizeSchema>;
export type PruneStep = Static<typeof PruneSchema>;
export type LowrankStep = Static<typeof LowrankSchema>;
export type SessionSettings = Static<typeof SessionSchema>;

/** A short human label for a recipe, used in tables and trial ids. */
export function recipeLabel(r: Recipe): string {
  const parts: string[] = [];
  if (r.prune) parts.push(`prune-${r.prune.method}${Math.round(r.prune.ratio * 100)}`);
  if (r.lowrank) parts.push(`lowrank${r.lowrank.energy !== undefined ? `-e${r.lowrank.energy}` : r.lowrank.ratio !== undefined ? `-r${r.lowrank.ratio}` : ''}`);
  const q = r.quantize;
  if (q) {
    if (q.mode === 'dynamic') parts.push('int8-dynamic');
    else if (q.mode === 'static') parts.push(`int8-static${q.calibration ? `-${q.calibration.method}` : ''}`);
    else if (q.mode === 'weight-only') parts.push(`w${q.bits ?? 4}-only`);
    else parts.push(q.fullGraph ? 'fp16-full' : 'fp16');
  }
  const label = parts.length ? parts.join('+') : 'fp32';
  const th = r.session?.intraOpThreads;
  return th ? `${label} t${th}` : label;
}
