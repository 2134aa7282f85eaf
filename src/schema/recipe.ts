import { Type, type Static } from '@sinclair/typebox';

export const QuantModeSchema = Type.Union([
  Type.Literal('dynamic'),
  Type.Literal('fp16'),
]);

export const RecipeSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    quantize: Type.Optional(
      Type.Object(
        {
          mode: QuantModeSchema,
          bits: Type.Optional(Type.Integer({ minimum: 4, maximum: 16 })),
          perChannel: Type.Boolean({ default: false }),
        },
        { additionalProperties: false },
      ),
    ),
    exclude: Type.Optional(
      Type.Object(
        { ops: Type.Array(Type.String(), { default: [] }), nodes: Type.Array(Type.String(), { default: [] }) },
        { additionalProperties: false },
      ),
    ),
    session: Type.Optional(
      Type.Object(
        {
          intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
          graphOptimizationLevel: Type.Optional(
            Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all')]),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type Recipe = Static<typeof RecipeSchema>;
export type QuantMode = Static<typeof QuantModeSchema>;
export type SessionSettings = NonNullable<Recipe['session']>;

/** A short human label for a recipe, used in tables and trial ids. */
export function recipeLabel(r: Recipe): string {
  const q = r.quantize ? (r.quantize.mode === 'dynamic' ? 'int8-dynamic' : r.quantize.mode) : 'fp32';
  const th = r.session?.intraOpThreads;
  return th ? `${q} t${th}` : q;
}
