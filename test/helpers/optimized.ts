// The graph ONNX Runtime actually runs: its optimized-model output at level "all". Fusion checks read this, not our
// own QDQ graph, since only ORT decides which QDQ groups become integer kernels.
import { join } from 'node:path';
import type { NodeProto } from 'onnx-buf';
import { loadModel, saveModel, type OnnxModel } from '../../src/onnx/model.js';
import { ort } from './ort.js';

/** Nodes of ORT's optimized graph for `model` (saved as `${name}.onnx` in `dir`). */
export async function optimizedNodes(dir: string, model: OnnxModel, name = 'm'): Promise<NodeProto[]> {
  const path = join(dir, `${name}.onnx`);
  await saveModel(model, path);
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all', optimizedModelFilePath: join(dir, `${name}.opt.onnx`), logSeverityLevel: 3 });
  await s.release();
  return (await loadModel(join(dir, `${name}.opt.onnx`))).proto.graph!.node;
}

/** Op types of ORT's optimized graph, in graph order. */
export async function optimizedOps(dir: string, model: OnnxModel, name = 'm'): Promise<string[]> {
  return (await optimizedNodes(dir, model, name)).map((n) => n.opType);
}
