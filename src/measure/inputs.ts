// Benchmark inputs made from a model's own input specs: which inputs it takes, their shapes once dynamic dims are
// settled, and seeded random values of the right dtype.
import type { ValueInfoProto } from 'onnx-buf';
import { UsageError, ModelError } from '../errors.js';
import { dtypeName } from '../onnx/dtype.js';
import { toFloat16Array } from '../onnx/half.js';
import type { OnnxModel } from '../onnx/model.js';
import { allocPlain, elementCountOf, plainDtypeOf, type PlainDtype, type PlainTensor } from './plain-tensor.js';

/** One dim of a declared shape: a fixed size, the symbolic name the model gives it, or null when it has neither. */
export type DimSpec = number | string | null;

export interface InputSpec {
  name: string;
  /** what the model declares, for messages: "float32", "int64", "sequence", ... */
  type: string;
  /** undefined when onnxruntime-node cannot be fed this type (strings, bfloat16, float8, int4, non-tensors) */
  dtype: PlainDtype | undefined;
  /** undefined when the model does not declare a rank */
  shape: DimSpec[] | undefined;
}

export interface InputOptions {
  /** sizes for inputs, usually from `--shape name=1x3x224x224`; they override everything else */
  shapes?: Record<string, number[]>;
  /** PRNG seed; the same seed and specs give the same values */
  seed?: number;
  /** size of a dynamic first dim (default 1) */
  batch?: number;
  /** distribution of float inputs: N(0, 1) (default) or uniform on [0, 1) */
  float?: 'normal' | 'uniform';
}

export interface GeneratedInputs {
  tensors: Record<string, PlainTensor>;
  /** every default that was picked for the caller, so reports can say what was measured */
  notes: string[];
}

// Names exporters give the batch dim; wherever they appear, the batch size is the sensible value.
const BATCH_NAMES = /^(n|b|bs|batch|batch_?size|batches|num_?batch(es)?)$/i;
// Integer inputs are often ids or indices; small non-negative values are valid for nearly any vocabulary.
export const INT_RANGE = 8;
// Beyond this an input would not fit in memory on the devices we target (2^28 float32 = 1 GiB).
const MAX_ELEMENTS = 2 ** 28;

/** The inputs a caller must feed: graph inputs that are not initializers (old exporters list weights as inputs). */
export function inputSpecs(model: OnnxModel): InputSpec[] {
  const graph = model.proto.graph;
  if (!graph) throw new ModelError('MODEL_INVALID', `${model.path ?? 'model'}: has no graph`);
  const weights = new Set(graph.initializer.map((t) => t.name));
  return graph.input.filter((vi) => !weights.has(vi.name)).map(specOf);
}

function specOf(vi: ValueInfoProto): InputSpec {
  const tv = vi.type?.value;
  if (tv?.case !== 'tensorType') {
    return { name: vi.name, type: tv?.case ?? 'unknown', dtype: undefined, shape: undefined };
  }
  const tt = tv.value;
  const shape = tt.shape?.dim.map((d): DimSpec => {
    if (d.value.case === 'dimValue') return Number(d.value.value);
    if (d.value.case === 'dimParam' && d.value.value !== '') return d.value.value;
    return null;
  });
  return { name: vi.name, type: dtypeName(tt.elemType), dtype: plainDtypeOf(tt.elemType), shape };
}

export function formatShape(shape: readonly DimSpec[] | undefined): string {
  if (!shape) return '[?]';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/**
 * Parses `name=1x3x224x224` (dims may also be comma-separated). The name is everything before the last `=`, so
 * names containing `=` or `:` still work. Throws UsageError naming the flag at fault.
 */
export function parseShapeFlag(flag: string): { name: string; dims: number[] } {
  const eq = flag.lastIndexOf('=');
  if (eq <= 0) throw new UsageError(`--shape "${flag}": expected name=DIMS, e.g. input=1x3x224x224`);
  const name = flag.slice(0, eq);
  const text = flag.slice(eq + 1).trim();
  if (text === '') throw new UsageError(`--shape "${flag}": no dims after "=", e.g. ${name}=1x3x224x224`);
  const dims = text.split(/[x,]/i).map((s, i) => {
    const v = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(v) || v < 1) {
      throw new UsageError(`--shape "${flag}": dim ${i} is "${s}"; dims must be positive integers separated by "x"`);
    }
    return v;
  });
  return { name, dims };
}

/** Parses several --shape flags into one map; naming an input twice is an error. */
export function parseShapeFlags(flags: readonly string[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const f of flags) {
    const { name, dims } = parseShapeFlag(f);
    if (Object.hasOwn(out, name)) throw new UsageError(`--shape names input "${name}" twice; give it once`);
    out[name] = dims;
  }
  return out;
}

/**
 * Settles every input's dims. Given shapes must match the declared rank and fixed dims. A dynamic dim takes, in
 * order: the size given for the same symbolic name on another input, the batch size when it is dim 0 or is named
 * like a batch dim; otherwise this throws UsageError naming the input and dim.
 */
export function resolveShapes(specs: readonly InputSpec[], opts: Pick<InputOptions, 'shapes' | 'batch'> = {}): { dims: Record<string, number[]>; notes: string[] } {
  const given = opts.shapes ?? {};
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`batch must be a positive integer, got ${batch}`);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const notes: string[] = [];
  const bound = new Map<string, { size: number; from: string }>();

  for (const [name, dims] of Object.entries(given)) {
    const spec = byName.get(name);
    if (!spec) {
      throw new UsageError(`--shape names input "${name}", but the model's inputs are: ${specs.map((s) => s.name).join(', ') || '(none)'}`);
    }
    dims.forEach((d, i) => {
      if (!Number.isInteger(d) || d < 1) throw new UsageError(`input "${name}" dim ${i}: the given size ${d} is not a positive integer`);
    });
    if (!spec.shape) continue;
    if (spec.shape.length !== dims.length) {
      throw new UsageError(`input "${name}": --shape gives ${dims.length} dims (${dims.join('x')}) but the model declares rank ${spec.shape.length} ${formatShape(spec.shape)}`);
    }
    spec.shape.forEach((d, i) => {
      if (typeof d === 'number' && d !== dims[i]) {
        throw new UsageError(`input "${name}" dim ${i}: --shape gives ${dims[i]} but the model fixes it at ${d} ${formatShape(spec.shape)}`);
      }
      if (typeof d === 'string') {
        const prev = bound.get(d);
        if (prev && prev.size !== dims[i]) {
          notes.push(`dim "${d}" is ${prev.size} on input "${prev.from}" but ${dims[i]} on "${name}"; the model may reject this`);
        } else if (!prev) bound.set(d, { size: dims[i], from: name });
      }
    });
  }

  const out: Record<string, number[]> = {};
  for (const spec of specs) {
    if (Object.hasOwn(given, spec.name)) {
      out[spec.name] = [...given[spec.name]];
      continue;
    }
    if (!spec.shape) {
      throw new UsageError(`input "${spec.name}": the model does not declare its shape; give it (--shape ${spec.name}=1x...)`);
    }
    out[spec.name] = spec.shape.map((d, i) => {
      if (typeof d === 'number') {
        if (i === 0 && opts.batch !== undefined && d !== batch) notes.push(`input "${spec.name}": dim 0 is fixed at ${d}; batch ${batch} does not apply`);
        return d;
      }
      const label = d === null ? `dim ${i}` : `dim ${i} ("${d}")`;
      const b = d === null ? undefined : bound.get(d);
      if (b) {
        notes.push(`input "${spec.name}" ${label} = ${b.size}, as given for input "${b.from}"`);
        return b.size;
      }
      if (i === 0 || (d !== null && BATCH_NAMES.test(d))) {
        notes.push(`input "${spec.name}" ${label} = ${batch} (batch${opts.batch === undefined ? ' default' : ''})`);
        return batch;
      }
      throw new UsageError(
        `input "${spec.name}" ${label} is dynamic and has no default; give the whole shape, e.g. --shape ${spec.name}=` +
          spec.shape!.map((x, k) => (typeof x === 'number' ? x : k === 0 ? batch : 'N')).join('x'),
      );
    });
  }
  return { dims: out, notes };
}

/** A seeded uniform [0, 1) generator (mulberry32): fast, and the same seed gives the same stream everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws from a uniform source (Box–Muller, both values of each pair used). */
export function normalFrom(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) { const s = spare; spare = undefined; return s; }
    const u = 1 - uniform(); // (0, 1]: log stays finite
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** Random inputs for every spec, shaped by resolveShapes. Throws for types onnxruntime-node cannot feed. */
export function generateInputs(specs: readonly InputSpec[], opts: InputOptions = {}): GeneratedInputs {
  const { dims, notes } = resolveShapes(specs, opts);
  const uniform = seededRandom(opts.seed ?? 1);
  const normal = normalFrom(uniform);
  const float = opts.float === 'uniform' ? uniform : normal;
  const tensors: Record<string, PlainTensor> = {};
  for (const spec of specs) {
    if (!spec.dtype) {
      throw new ModelError('MODEL_UNSUPPORTED', `input "${spec.name}" has type ${spec.type}, which edgetune cannot generate values for; pass the inputs yourself`);
    }
    const shape = dims[spec.name];
    const n = elementCountOf(shape);
    if (n > MAX_ELEMENTS) {
      throw new UsageError(`input "${spec.name}" with shape ${shape.join('x')} has ${n} elements (limit ${MAX_ELEMENTS}); give a smaller --shape`);
    }
    tensors[spec.name] = { dtype: spec.dtype, dims: shape, data: fill(spec.dtype, n, float, uniform) };
    if (spec.dtype !== 'float32' && spec.dtype !== 'float64' && spec.dtype !== 'float16' && spec.dtype !== 'bool') {
      notes.push(`input "${spec.name}" (${spec.dtype}): random integers in [0, ${INT_RANGE}); pass real inputs if the model needs particular values`);
    }
  }
  return { tensors, notes };
}

function fill(dtype: PlainDtype, n: number, float: () => number, uniform: () => number): PlainTensor['data'] {
  const int = () => Math.floor(uniform() * INT_RANGE);
  switch (dtype) {
    case 'float16': {
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = float();
      return toFloat16Array(f);
    }
    case 'int64':
    case 'uint64': {
      const a = allocPlain(dtype, n);
      for (let i = 0; i < n; i++) a[i] = BigInt(int());
      return a;
    }
    case 'bool': {
      const a = allocPlain(dtype, n);
      for (let i = 0; i < n; i++) a[i] = uniform() < 0.5 ? 0 : 1;
      return a;
    }
    case 'float32':
    case 'float64': {
      const a = allocPlain(dtype, n);
      for (let i = 0; i < n; i++) a[i] = float();
      return a;
    }
    default: {
      const a = allocPlain(dtype, n);
      for (let i = 0; i < n; i++) a[i] = int();
      return a;
    }
  }
}
