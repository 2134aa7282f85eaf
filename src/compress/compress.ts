import { rename, stat, unlink } from 'node:fs/promises';
import { dirname, resolve, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadModel, modelBytes, saveModel, sha256 } from '../onnx/model.js';
import { EdgetuneError } from '../errors.js';
import { fsyncDir, prepareOutputs } from '../util/atomic.js';
import type { CompressReport, OpContext, Recipe } from '../types.js';
import { openDataSource } from '../measure/datasets/open.js';
import type { DataSource } from '../measure/datasets/source.js';
import { applyRecipe } from './pipeline.js';
import { verifyAgainst } from './verify.js';

export interface CompressOptions {
  input: string;
  output: string;
  recipe: Recipe;
  /** Refuse to write a model whose worst output cosine falls below this (default 0.99). */
  minCosine?: number;
  /** Write even when fidelity is below minCosine (the report still says so). */
  force?: boolean;
  shapes?: Record<string, number[]>;
  /**
   * Real examples (a dataset path: .npy/.npz/.jsonl, ONNX test data or IDX folder, or an opened source) for the steps
   * that need data (static calibration, pruning reconstruction) and for the verification. Without it both run on
   * generated N(0, 1) inputs, which suits weight-only changes but not calibrated ranges.
   */
  data?: string | DataSource;
  /** examples the verification compares on (default 64) */
  verifySamples?: number;
}

/**
 * Load → apply the recipe → write a candidate beside the output → load it in ONNX Runtime and compare with the
 * original → rename into place. A model that ORT cannot load or that strays too far is never written.
 */
export async function compressFile(opts: CompressOptions, ctx: OpContext = {}): Promise<CompressReport> {
  const inPath = resolve(opts.input);
  const outPath = resolve(opts.output);
  if (inPath === outPath) throw new EdgetuneError('USAGE', `output ${opts.output} is the input file; choose another path with -o`);
  await prepareOutputs([{ path: outPath, what: 'output' }]);
  const original = await loadModel(inPath);
  const inBytes = modelBytes(original);
  const data = typeof opts.data === 'string' ? await openDataSource(opts.data, original) : opts.data;
  const { model, passes, warnings } = await applyRecipe(original, opts.recipe, {
    modelPath: inPath,
    data,
    shapes: opts.shapes,
    signal: ctx.signal,
    onProgress: (p) => ctx.onProgress?.({ ...p, pct: p.pct * 0.5 }),
  });
  const candidate = join(dirname(outPath), `.${basename(outPath)}.${randomBytes(4).toString('hex')}.candidate.onnx`);
  try {
    const saved = await saveModel(model, candidate);
    ctx.onProgress?.({ step: 'verify in ONNX Runtime', pct: 60 });
    const verifySamples = opts.verifySamples ?? 64;
    // Compare on examples the calibration did not see, when the set has enough of them.
    const calibrated = calibrationSamples(opts.recipe);
    const skip = data?.count !== undefined && data.count >= calibrated + verifySamples ? calibrated : 0;
    const { fidelity, on } = await verifyAgainst(inPath, original, candidate, { shapes: opts.shapes, data, samples: verifySamples, skip }, ctx);
    if (data && skip === 0 && calibrated > 0) warnings.push(`verified on the examples that also calibrated the model (${data.name} has ${data.count ?? 'an unknown number of'} examples, fewer than ${calibrated} + ${verifySamples}): fidelity may look better than on unseen data`);
    const minCos = opts.minCosine ?? 0.99;
    const worst = Object.entries(fidelity).reduce((w, [k, v]) => (v.cosine < w[1] ? [k, v.cosine] as [string, number] : w), ['', 1] as [string, number]);
    if (worst[1] < minCos) {
      const msg = `output "${worst[0]}" of the compressed model has cosine similarity ${worst[1].toFixed(4)} with the original, below ${minCos}`;
      const hint = !data && calibrationSamples(opts.recipe) > 0
        ? 'The recipe calibrates on data and none was given, so it ran on random inputs: pass real examples with --data. '
        : '';
      if (!opts.force) throw new EdgetuneError('COMPRESS_FIDELITY', `${opts.input}: ${msg}; nothing was written. ${hint}Exclude sensitive layers (recipe.exclude) or pass --force to write it anyway.`);
      warnings.push(msg);
    }
    await rename(candidate, outPath);
    await renameData(candidate, outPath);
    await fsyncDir(dirname(outPath));
    ctx.onProgress?.({ step: 'written', pct: 100 });
    return {
      v: 1,
      recipe: opts.recipe,
      input: { path: inPath, bytes: inBytes.length, sha256: sha256(inBytes) },
      output: { path: outPath, bytes: saved.bytes, sha256: saved.sha256 },
      passes,
      fidelity,
      verifiedOn: on,
      warnings,
    };
  } finally {
    await unlink(candidate).catch(() => {});
    await unlink(`${candidate}.data`).catch(() => {});
  }
}

/** How many leading examples of the data the recipe's data-driven steps read (0 when none does). */
function calibrationSamples(recipe: Recipe): number {
  const q = recipe.quantize;
  const quant = q?.mode === 'static' || q?.fallback ? q.calibration?.samples ?? 128 : 0;
  const prune = recipe.prune?.reconstruct ? 256 : 0;
  return Math.max(quant, prune);
}

/** A model with external data was saved with `<candidate>.data`; the location inside names that file. */
async function renameData(candidate: string, outPath: string): Promise<void> {
  try { await stat(`${candidate}.data`); } catch { return; }
  // The external-data location is baked into the model, so re-save rather than rename the data file.
  const m = await loadModel(outPath);
  await saveModel(m, outPath);
}
