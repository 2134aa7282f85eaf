// JSON has no Infinity: JSON.stringify writes it as null, which a reader takes for "missing". Where an infinite
// number means something — a candidate's SQNR is +Infinity when its outputs equal fp32's exactly — documents are
// written with `infinityAsString`: ±Infinity become the strings "Infinity" / "-Infinity" (what String() and Number()
// give and take), while NaN, which already means "unknown", stays null. Readers put the numbers back with
// `numberOrInfinity`.

/** A JSON.stringify replacer: ±Infinity → "Infinity" / "-Infinity"; everything else unchanged. */
export function infinityAsString(_key: string, v: unknown): unknown {
  return v === Infinity || v === -Infinity ? String(v) : v;
}

/** A number field of a document written with `infinityAsString`: the number, ±Infinity, or undefined when absent. */
export function numberOrInfinity(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return undefined;
}
