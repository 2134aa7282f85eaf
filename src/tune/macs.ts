// Multiply-accumulates of a model's Conv, MatMul and Gemm nodes: the compute proxy the latency model uses.
// Weight shapes come from the graph; activation shapes (batch, spatial size, rows) from one ONNX Runtime run of the
// original model with those activations exposed as outputs. Pruning and low-rank change channel counts and add
// thin layers but never rows or spatial sizes, so the original's activation shapes serve every compressed stem.
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeProto } from 'onnx-buf';
import { augmentModel } from '../compress/calibrate/collect.js';
import { constRef, dimsOf, intsAttr, stringAttr } from '../compress/prune/tensors.js';
import { GraphIndex } from '../onnx/graph.js';
import { saveModel, type OnnxModel } from '../onnx/model.js';
import type { PlainTensor } from '../measure/plain-tensor.js';
import { ModelRunner } from '../measure/runner.js';
import type { OpContext } from '../types.js';

const COUNTED = new Set(['Conv', 'MatMul', 'Gemm']);
// Ops whose output has the rows of their first input (for tensors the probe never saw, e.g. a low-rank middle).
const ROW_PRESERVING = new Set(['MatMul', 'Gemm', 'Relu', 'Sigmoid', 'Tanh', 'Add', 'Mul', 'Sub', 'Div', 'Identity', 'Cast', 'Dropout', 'Clip', 'LeakyRelu', 'Gelu', 'Erf', 'HardSigmoid', 'HardSwish']);

export interface MacsCount {
  /** undefined when no node could be counted */
  macs?: number;
  counted: number;
  /** nodes left out, with why (their MACs are missing from the total) */
  uncounted: string[];
}

const isStd = (n: NodeProto) => n.domain === '' || n.domain === 'ai.onnx';
const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

/** The activations whose shapes countMacs needs: the non-constant inputs of Conv/MatMul/Gemm nodes. */
export function probeTensors(model: OnnxModel): string[] {
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const out = new Set<string>();
  for (const n of g.node) {
    if (!isStd(n) || !COUNTED.has(n.opType)) continue;
    for (const name of n.input.slice(0, 2)) if (name && !constRef(idx, name)) out.add(name);
  }
  return [...out];
}

function convOut(n: NodeProto, x: readonly number[], w: readonly number[]): number[] | undefined {
  const sp = x.length - 2;
  if (sp < 1 || w.length !== x.length) return undefined;
  const strides = intsAttr(n, 'strides') ?? [];
  const dil = intsAttr(n, 'dilations') ?? [];
  const pads = intsAttr(n, 'pads') ?? [];
  const auto = stringAttr(n, 'auto_pad') ?? 'NOTSET';
  const out: number[] = [];
  for (let i = 0; i < sp; i++) {
    const inn = x[2 + i], k = w[2 + i], s = strides[i] ?? 1, d = dil[i] ?? 1;
    if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') out.push(Math.ceil(inn / s));
    else if (auto === 'VALID') out.push(Math.floor((inn - d * (k - 1) - 1) / s) + 1);
    else out.push(Math.floor((inn + (pads[i] ?? 0) + (pads[i + sp] ?? 0) - d * (k - 1) - 1) / s) + 1);
  }
  return out.every((v) => v > 0) ? out : undefined;
}

/** MACs of `model` given activation shapes by tensor name (from probeShapes on the original model). Pure. */
export function countMacs(model: OnnxModel, shapes: ReadonlyMap<string, readonly number[]>): MacsCount {
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const dimsOfValue = (name: string): number[] | undefined => {
    const c = constRef(idx, name);
    return c ? dimsOf(c.tensor) : shapes.get(name)?.slice();
  };
  const rowsMemo = new Map<string, number | undefined>();
  // Rows of a value seen as a matrix [rows, last dim]; follows row-preserving producers for unseen values.
  const rowsOf = (name: string, depth = 0): number | undefined => {
    if (rowsMemo.has(name)) return rowsMemo.get(name);
    let r: number | undefined;
    const d = shapes.get(name);
    if (d && d.length >= 1) r = prod(d.slice(0, -1));
    else if (depth < 16) {
      const p = idx.producer.get(name);
      if (p && isStd(p) && ROW_PRESERVING.has(p.opType) && p.input[0]) r = rowsOf(p.input[0], depth + 1);
    }
    rowsMemo.set(name, r);
    return r;
  };
  let macs = 0;
  let counted = 0;
  const uncounted: string[] = [];
  for (const n of g.node) {
    if (!isStd(n) || !COUNTED.has(n.opType)) continue;
    const label = n.name || n.output[0];
    const skip = (why: string) => uncounted.push(`${label} (${n.opType}): ${why}`);
    const w = dimsOfValue(n.input[1]);
    if (!w) { skip(`shape of "${n.input[1]}" unknown`); continue; }
    if (n.opType === 'Conv') {
      const x = shapes.get(n.input[0]);
      if (!x) { skip(`shape of input "${n.input[0]}" unknown`); continue; }
      const out = convOut(n, x, w);
      if (!out) { skip('output size could not be worked out'); continue; }
      macs += x[0] * w[0] * prod(out) * prod(w.slice(1));
    } else if (n.opType === 'MatMul') {
      const rows = rowsOf(n.input[0]);
      if (rows === undefined || w.length < 2) { skip(`rows of "${n.input[0]}" unknown`); continue; }
      // A batched right-hand side (attention) multiplies its own batch in: rows already count it on the left.
      macs += rows * w[w.length - 2] * w[w.length - 1];
    } else {
      const a = shapes.get(n.input[0]);
      const transA = n.attribute.find((x) => x.name === 'transA')?.i ?? 0n;
      const rows = a ? (transA ? a[1] : a[0]) : rowsOf(n.input[0]);
      if (rows === undefined || w.length !== 2) { skip(`rows of "${n.input[0]}" unknown`); continue; }
      macs += rows * w[0] * w[1];
    }
    counted++;
  }
  return { ...(counted ? { macs } : {}), counted, uncounted };
}

/**
 * Runs the model once with the activations countMacs needs exposed as outputs, in an ONNX Runtime child process,
 * and returns their shapes (graph inputs from the feeds). The augmented copy is written to `workDir`.
 */
export async function probeShapes(model: OnnxModel, inputs: Record<string, PlainTensor>, workDir: string, ctx: OpContext = {}): Promise<Map<string, number[]>> {
  const wanted = probeTensors(model);
  const shapes = new Map<string, number[]>();
  for (const [name, t] of Object.entries(inputs)) shapes.set(name, [...t.dims]);
  const missing = wanted.filter((t) => !shapes.has(t));
  if (!missing.length) return shapes;
  const file = join(workDir, 'macs-probe.onnx');
  await saveModel(augmentModel(model, missing), file);
  try {
    const runner = await ModelRunner.start(file, { intraOpThreads: 1 }, ctx);
    try {
      const out = await runner.run(inputs, ctx);
      for (const name of missing) if (out[name]) shapes.set(name, [...out[name].dims]);
    } finally {
      await runner.close();
    }
  } finally {
    await unlink(file).catch(() => {});
  }
  return shapes;
}
