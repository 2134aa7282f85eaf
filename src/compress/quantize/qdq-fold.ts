// Folds an inference BatchNormalization into the Conv before it (PaddlePaddle and TF exports leave them apart).
// ONNX Runtime folds them itself at load time, but only into float weights: once the weights sit behind a
// DequantizeLinear it cannot, and the BN would split every int8 conv from the next with a float round trip.
//   y = gamma · (conv(x, W) + b − mean) / sqrt(var + eps) + beta  =  conv(x, W·s) + (b − mean)·s + beta,  s = gamma / sqrt(var + eps)
import type { GraphProto, NodeProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, isDefaultDomain as isDefault, pruneUnused, removeNodes, uniqueName } from '../../onnx/graph.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import type { OnnxModel } from '../../onnx/model.js';


/** Folds every eligible Conv → BatchNormalization pair of the main graph in place; returns the BN names folded. */
export function foldBatchNorms(model: OnnxModel): string[] {
  const g: GraphProto = model.proto.graph!;
  const idx = new GraphIndex(g);
  const folded: string[] = [];
  const drop: NodeProto[] = [];
  for (const bn of g.node) {
    if (bn.opType !== 'BatchNormalization' || !isDefault(bn) || bn.output.filter(Boolean).length !== 1) continue;
    if (bn.attribute.some((a) => a.name === 'training_mode' && Number(a.i) === 1)) continue;
    const conv = idx.producer.get(bn.input[0]);
    if (!conv || conv.opType !== 'Conv' || !isDefault(conv)) continue;
    const y = conv.output[0];
    if (idx.consumersOf(y).length !== 1 || idx.graphOutputs.has(y)) continue;
    const consts = [conv.input[1], ...bn.input.slice(1, 5)].map((n) => idx.constantTensor(n));
    const bias = conv.input[2] ? idx.constantTensor(conv.input[2]) : undefined;
    if (consts.some((c) => !c || c.tensor.dataType !== DT.FLOAT) || (conv.input[2] && (!bias || bias.tensor.dataType !== DT.FLOAT))) continue;
    const [wT, gammaT, betaT, meanT, varT] = consts.map((c) => readTensor(c!.tensor, model.dir));
    const [w, gamma, beta, mean, variance] = [wT, gammaT, betaT, meanT, varT].map(toFloat32);
    const m = wT.dims[0];
    if ([gamma, beta, mean, variance].some((a) => a.length !== m)) continue;
    const eps = bn.attribute.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
    const b = bias ? toFloat32(readTensor(bias.tensor, model.dir)) : new Float32Array(m);
    const per = w.length / m;
    const w2 = new Float32Array(w.length);
    const b2 = new Float32Array(m);
    for (let c = 0; c < m; c++) {
      const s = gamma[c] / Math.sqrt(variance[c] + eps);
      for (let i = 0; i < per; i++) w2[c * per + i] = w[c * per + i] * s;
      b2[c] = (b[c] - mean[c]) * s + beta[c];
    }
    if (!w2.every(Number.isFinite) || !b2.every(Number.isFinite)) continue;
    const wName = uniqueName(g, `${conv.input[1]}_bnfolded`);
    g.initializer.push(makeTensor(wName, DT.FLOAT, wT.dims, w2));
    const bName = uniqueName(g, `${conv.input[2] || conv.name || y}_bnfolded_bias`);
    g.initializer.push(makeTensor(bName, DT.FLOAT, [m], b2));
    conv.input = [conv.input[0], wName, bName];
    conv.output = [bn.output[0]];
    drop.push(bn);
    folded.push(bn.name || bn.output[0]);
  }
  if (drop.length) {
    removeNodes(g, drop);
    pruneUnused(g);
  }
  return folded;
}
