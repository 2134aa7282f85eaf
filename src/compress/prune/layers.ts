// One layer's least-squares refit: how its inputs become rows of X (im2col patches for Conv, rows for Gemm/MatMul),
// how its current weights read as W₀ (k×m, bias as the last row), and how a solution is written back.
import type { GraphProto, NodeProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import { toFloat32 } from '../../onnx/tensor.js';
import type { PlainTensor } from '../../measure/plain-tensor.js';
import type { SinkInfo } from './apply.js';
import { NormalEquations } from './normal-eq.js';
import { constRef, dimsOf, floatAttr, intAttr, intsAttr, nodeLabel, readConst, replaceInput, stringAttr, type ConstRef } from './tensors.js';

export interface LayerFit {
  sink: SinkInfo;
  eq: NormalEquations;
  /** current weights as k×m */
  w0: Float64Array;
  /**
   * Adds rows from one batch: `y` is the layer's output in the original model; `x` its input, either in the pruned
   * model or (with `fromTeacher`) in the original, of which only the kept input positions are read.
   */
  addBatch(x: PlainTensor, y: PlainTensor, rowsWanted: number, rand: () => number, fromTeacher?: boolean): void;
  /** writes a k×m solution into the graph */
  write(graph: GraphProto, w: Float64Array): void;
}

/** A fit for the sink, or the reason it cannot be refitted. */
export function makeFit(model: OnnxModel, sink: SinkInfo): LayerFit | string {
  const idx = new GraphIndex(model.proto.graph!);
  const w = constRef(idx, sink.node.input[1]);
  if (!w || w.tensor.dataType !== DT.FLOAT) return 'its weight is not a float32 constant';
  if (sink.op === 'Conv') return convFit(model, idx, sink, w);
  if (sink.op === 'Gemm') return gemmFit(model, idx, sink, w);
  if (sink.op === 'MatMul') return matmulFit(model, sink, w);
  return `${sink.op} layers are not refitted`;
}

/** Picks `want` of `total` indices at random (all of them when want ≥ total). */
function pick(total: number, want: number, rand: () => number): Int32Array {
  if (want >= total) return Int32Array.from({ length: total }, (_, i) => i);
  const out = new Int32Array(want);
  for (let i = 0; i < want; i++) out[i] = Math.floor(rand() * total);
  return out;
}

function floats(t: PlainTensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
}

function convFit(model: OnnxModel, idx: GraphIndex, sink: SinkInfo, w: ConstRef): LayerFit | string {
  const node = sink.node;
  const wd = dimsOf(w.tensor);
  if (wd.length !== 4 && wd.length !== 3) return `Conv with a ${wd.length - 2}-D kernel is not refitted`;
  if (intAttr(node, 'group', 1) !== 1) return 'grouped Conv is not refitted';
  const [M, C] = wd;
  const kh = wd.length === 4 ? wd[2] : 1, kw = wd[wd.length - 1];
  const sp = wd.length - 2;
  const strides = intsAttr(node, 'strides') ?? new Array(sp).fill(1);
  const dil = intsAttr(node, 'dilations') ?? new Array(sp).fill(1);
  const autoPad = stringAttr(node, 'auto_pad') ?? 'NOTSET';
  const pads = intsAttr(node, 'pads') ?? new Array(2 * sp).fill(0);
  const [sh, sw] = sp === 2 ? strides : [1, strides[0]];
  const [dh, dw] = sp === 2 ? dil : [1, dil[0]];
  const ksz = C * kh * kw;
  const k = ksz + 1, m = M;
  const wt = toFloat32(readConst(w, model.dir));
  const bRef = constRef(idx, node.input[2]);
  if (node.input[2] && !bRef) return 'its bias is computed at run time';
  const bias = bRef ? toFloat32(readConst(bRef, model.dir)) : new Float32Array(M);
  const w0 = new Float64Array(k * m);
  for (let o = 0; o < M; o++) {
    for (let j = 0; j < ksz; j++) w0[j * m + o] = wt[o * ksz + j];
    w0[ksz * m + o] = bias[o];
  }
  const eq = new NormalEquations(k, m);
  const xrow = new Float64Array(k), yrow = new Float64Array(m);
  return {
    sink, eq, w0,
    addBatch(x, y, rowsWanted, rand, fromTeacher) {
      const xd = floats(x), yd = floats(y);
      const [N, Cx] = x.dims;
      const chan = fromTeacher ? sink.keptIn : undefined;
      const H = sp === 2 ? x.dims[2] : 1, W = x.dims[x.dims.length - 1];
      const Mfull = y.dims[1];
      const OH = sp === 2 ? y.dims[2] : 1, OW = y.dims[y.dims.length - 1];
      if ((chan ? chan.length : Cx) !== C) throw new Error(`internal: Conv "${nodeLabel(node)}" input has ${Cx} channels, weight expects ${C}`);
      let pt = 0, pl = 0;
      if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
        const tot = (inp: number, out: number, s: number, kk: number, d: number) => Math.max(0, (out - 1) * s + (kk - 1) * d + 1 - inp);
        const th = tot(H, OH, sh, kh, dh), tw = tot(W, OW, sw, kw, dw);
        pt = autoPad === 'SAME_UPPER' ? Math.floor(th / 2) : Math.ceil(th / 2);
        pl = autoPad === 'SAME_UPPER' ? Math.floor(tw / 2) : Math.ceil(tw / 2);
      } else if (autoPad !== 'VALID') {
        pt = sp === 2 ? pads[0] : 0;
        pl = sp === 2 ? pads[1] : pads[0];
      }
      const keep = sink.keptOut;
      for (const p of pick(N * OH * OW, rowsWanted, rand)) {
        const n = Math.floor(p / (OH * OW)), oh = Math.floor(p / OW) % OH, ow = p % OW;
        let j = 0;
        for (let c = 0; c < C; c++) {
          const base = (n * Cx + (chan ? chan[c] : c)) * H * W;
          for (let i = 0; i < kh; i++) {
            const ih = oh * sh - pt + i * dh;
            for (let q = 0; q < kw; q++, j++) {
              const iw = ow * sw - pl + q * dw;
              xrow[j] = ih >= 0 && ih < H && iw >= 0 && iw < W ? xd[base + ih * W + iw] : 0;
            }
          }
        }
        xrow[ksz] = 1;
        for (let o = 0; o < m; o++) yrow[o] = yd[((n * Mfull + (keep ? keep[o] : o)) * OH + oh) * OW + ow];
        eq.add(xrow, yrow);
      }
    },
    write(graph, sol) {
      const nw = new Float32Array(M * ksz), nb = new Float32Array(M);
      for (let o = 0; o < M; o++) {
        for (let j = 0; j < ksz; j++) nw[o * ksz + j] = sol[j * m + o];
        nb[o] = sol[ksz * m + o];
      }
      replaceInput(graph, node, 1, w, { dtype: DT.FLOAT, dims: wd, data: nw }, `${w.name}_refit`);
      replaceInput(graph, node, 2, bRef ?? w, { dtype: DT.FLOAT, dims: [M], data: nb }, `${w.name}_refit_bias`);
    },
  };
}

function gemmFit(model: OnnxModel, idx: GraphIndex, sink: SinkInfo, w: ConstRef): LayerFit | string {
  const node = sink.node;
  if (intAttr(node, 'transA', 0) === 1) return 'Gemm with transA is not refitted';
  const transB = intAttr(node, 'transB', 0) === 1;
  const alpha = floatAttr(node, 'alpha', 1), beta = floatAttr(node, 'beta', 1);
  const wd = dimsOf(w.tensor);
  const K = transB ? wd[1] : wd[0], N = transB ? wd[0] : wd[1];
  const cRef = constRef(idx, node.input[2]);
  if (node.input[2] && !cRef) return 'its bias is computed at run time';
  const cd = cRef ? dimsOf(cRef.tensor) : [];
  const cLen = cd.reduce((a, b) => a * b, 1);
  if (cRef && !(cLen === 1 || (cLen === N && cd[cd.length - 1] === N))) return `its bias has shape [${cd}], not one value per output`;
  if (alpha === 0) return 'alpha is 0';
  const intercept = beta !== 0;
  const k = K + (intercept ? 1 : 0), m = N;
  const wt = toFloat32(readConst(w, model.dir));
  const c = cRef ? toFloat32(readConst(cRef, model.dir)) : undefined;
  const w0 = new Float64Array(k * m);
  for (let i = 0; i < K; i++) for (let o = 0; o < N; o++) w0[i * m + o] = alpha * (transB ? wt[o * K + i] : wt[i * N + o]);
  if (intercept) for (let o = 0; o < N; o++) w0[K * m + o] = c ? beta * c[c.length === 1 ? 0 : o] : 0;
  const eq = new NormalEquations(k, m);
  return {
    sink, eq, w0,
    addBatch(x, y, rowsWanted, rand, fromTeacher) { addRows(eq, x, y, K, intercept, sink.keptOut, rowsWanted, rand, fromTeacher ? sink.keptIn : undefined); },
    write(graph, sol) {
      const nw = new Float32Array(K * N);
      for (let i = 0; i < K; i++) for (let o = 0; o < N; o++) nw[transB ? o * K + i : i * N + o] = sol[i * m + o] / alpha;
      replaceInput(graph, node, 1, w, { dtype: DT.FLOAT, dims: wd, data: nw }, `${w.name}_refit`);
      if (intercept) {
        const nb = new Float32Array(N);
        for (let o = 0; o < N; o++) nb[o] = sol[K * m + o] / beta;
        replaceInput(graph, node, 2, cRef ?? w, { dtype: DT.FLOAT, dims: [N], data: nb }, `${w.name}_refit_bias`);
      }
    },
  };
}

function matmulFit(model: OnnxModel, sink: SinkInfo, w: ConstRef): LayerFit | string {
  const node = sink.node;
  const wd = dimsOf(w.tensor);
  const [K, N] = wd;
  const wt = toFloat32(readConst(w, model.dir));
  const w0 = Float64Array.from(wt);
  const eq = new NormalEquations(K, N);
  return {
    sink, eq, w0,
    addBatch(x, y, rowsWanted, rand, fromTeacher) { addRows(eq, x, y, K, false, sink.keptOut, rowsWanted, rand, fromTeacher ? sink.keptIn : undefined); },
    write(graph, sol) {
      replaceInput(graph, node, 1, w, { dtype: DT.FLOAT, dims: wd, data: Float32Array.from(sol) }, `${w.name}_refit`);
    },
  };
}

/** Rows of a [..., K] input against a [..., Nfull] output (the kept columns of it). */
function addRows(eq: NormalEquations, x: PlainTensor, y: PlainTensor, K: number, intercept: boolean, keep: number[] | undefined, rowsWanted: number, rand: () => number, inMap?: number[]): void {
  const xd = floats(x), yd = floats(y);
  const Nfull = y.dims[y.dims.length - 1];
  const Kx = inMap ? x.dims[x.dims.length - 1] : K;
  const rows = xd.length / Kx;
  const xrow = new Float64Array(eq.k), yrow = new Float64Array(eq.m);
  for (const r of pick(rows, rowsWanted, rand)) {
    for (let i = 0; i < K; i++) xrow[i] = xd[r * Kx + (inMap ? inMap[i] : i)];
    if (intercept) xrow[K] = 1;
    for (let o = 0; o < eq.m; o++) yrow[o] = yd[r * Nfull + (keep ? keep[o] : o)];
    eq.add(xrow, yrow);
  }
}
