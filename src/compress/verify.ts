import { generateInputs, inputSpecs } from '../measure/inputs.js';
import { ModelRunner } from '../measure/runner.js';
import { compareOutputs } from '../measure/fidelity.js';
import type { OnnxModel } from '../onnx/model.js';
import type { OpContext } from '../types.js';

export type FidelityByOutput = Record<string, { cosine: number; maxAbsError: number; sqnrDb: number; top1Agreement?: number }>;

/**
 * Runs the original and the compressed file on the same generated inputs, each in its own ONNX Runtime child
 * process, and compares every output. Loading the compressed file here is also the proof that ORT accepts it.
 */
export async function verifyAgainst(
  originalPath: string, original: OnnxModel, candidatePath: string,
  opts: { shapes?: Record<string, number[]>; seed?: number; samples?: number } = {}, ctx: OpContext = {},
): Promise<FidelityByOutput> {
  const { tensors: inputs } = generateInputs(inputSpecs(original), { shapes: opts.shapes, seed: opts.seed ?? 1234 });
  const ref = await ModelRunner.start(originalPath, { intraOpThreads: 1 }, ctx);
  let refOut;
  try { refOut = await ref.run(inputs); } finally { await ref.close(); }
  const cand = await ModelRunner.start(candidatePath, { intraOpThreads: 1 }, ctx);
  let candOut;
  try { candOut = await cand.run(inputs); } finally { await cand.close(); }
  return compareOutputs(refOut, candOut) as FidelityByOutput;
}
