// Fuzzed job payloads for the agent: each one is invalid by construction (random noise first, then one "breaker"
// that no noise can undo), so the only right answer to every one is REJECTED. Deterministic from a seed.

export interface FuzzCase {
  /** The job id in the topic (always valid, so the agent can answer). */
  id: string;
  payload: Buffer;
  breaker: string;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), s | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const WEIRD = ['', ' ', '\u0000', '\u202e', '💥', '../../etc/passwd', '$(reboot)', '`rm -rf /`', '%s%n', '\\', '"', 'null', '__proto__', 'constructor', 'x'.repeat(300)];

export function fuzzCases(n: number, opts: { seed?: number; maxPayloadBytes: number; types: string[]; prefix?: string }): FuzzCase[] {
  const r = rng(opts.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const randStr = (): string => (r() < 0.3 ? pick(WEIRD) : String.fromCharCode(...Array.from({ length: 1 + Math.floor(r() * 12) }, () => 32 + Math.floor(r() * 0x2fff))));
  const randVal = (depth = 0): unknown => {
    const k = r();
    if (depth > 3 || k < 0.2) return randStr();
    if (k < 0.35) return Math.floor((r() - 0.5) * 2 ** 40);
    if (k < 0.45) return pick([true, false, null, 1e308, -0, 0.5]);
    if (k < 0.7) return Array.from({ length: Math.floor(r() * 4) }, () => randVal(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [randStr(), randVal(depth + 1)]));
  };
  const breakers: Array<[string, (doc: Record<string, unknown>, id: string) => Buffer]> = [
    ['bad v', (d) => json({ ...d, v: pick([0, 2, '1', null, 1.5, []]) })],
    ['unknown type', (d) => json({ ...d, type: `x-${randStr()}` })],
    ['non-string type', (d) => json({ ...d, type: pick([1, null, {}, [], true]) })],
    ['missing type', (d) => { const { type: _t, ...rest } = d; return json(rest); }],
    ['id differs from topic', (d, id) => json({ ...d, id: `${id}-other` })],
    ['extra top-level field', (d) => json({ ...d, [`extra${Math.floor(r() * 1e6)}`]: randVal() })],
    ['bad timeoutS', (d) => json({ ...d, timeoutS: pick([-1, 0, '10', 1e12, null]) })],
    ['params not an object / bad params', (d) => json({ ...d, params: { ...(typeof d.params === 'object' && d.params ? d.params : {}), [`zz${Math.floor(r() * 1e6)}`]: randVal() } })],
    ['__proto__ key', (d) => Buffer.from(JSON.stringify(d).replace(/^\{/, '{"__proto__":{"polluted":1},'))],
    ['truncated JSON', (d) => { const s = JSON.stringify(d); return Buffer.from(s.slice(0, Math.max(1, Math.floor(r() * (s.length - 1))))); }],
    ['not an object', () => json(pick([[], 'job', 42, null, true, [{ v: 1 }]]))],
    ['random bytes', () => Buffer.from(Array.from({ length: 1 + Math.floor(r() * 200) }, () => Math.floor(r() * 256)).map((b, i) => (i === 0 ? (b === 0x7b ? 0x7c : b) : b)))],
    ['empty payload', () => Buffer.alloc(0)],
    ['oversized', (d) => json({ ...d, params: { pad: 'x'.repeat(opts.maxPayloadBytes + 1) } })],
    ['deep nesting', (d) => Buffer.from(JSON.stringify({ ...d, params: {} }).replace('"params":{}', `"params":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`))],
    ['invalid UTF-8 in JSON', (d) => Buffer.concat([Buffer.from(JSON.stringify(d).slice(0, -1)), Buffer.from([0xff, 0xfe]), Buffer.from(',"bad\\ud800":1}')])],
  ];
  const out: FuzzCase[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${opts.prefix ?? 'fz'}${i}`;
    // noise: a plausible job, randomly bent
    const doc: Record<string, unknown> = { v: 1, id, type: pick(opts.types), params: r() < 0.5 ? {} : randVal() };
    if (r() < 0.3) doc.timeoutS = r() * 100;
    const [name, breaker] = breakers[i % breakers.length];
    out.push({ id, payload: breaker(doc, id), breaker: name });
  }
  return out;
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}
