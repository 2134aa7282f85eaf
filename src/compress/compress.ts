import { rename, stat, unlink } from 'node:fs/promises';
import { dirname, resolve, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadModel, modelBytes, saveModel, sha256 } from '../onnx/model.js';
import { EdgetuneError } from '../errors.js';
import { fsyncDir } from '../util/atomic.js';
import type { CompressReport, OpContext, Recipe } from '../types.js';
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
}

/**
 * Load → apply the recipe → write a candidate beside the output → load it in ONNX Runtime and compare with the
 * original → rename into place. A model that ORT cannot load or that strays too far is never written.
 */
export async function compressFile(opts: CompressOptions, ctx: OpContext = {}): Promise<CompressReport> {
  const inPath = resolve(opts.input);
  const outPath = resolve(opts.output);
  if (inPath === outPath) throw new EdgetuneError('USAGE', `output ${opts.output} is the input file; choose another path with -o`);
  const original = await loadModel(inPath);
  const inBytes = modelBytes(original);
  const { model, passes, warnings } = await applyRecipe(original, opts.recipe, {
    modelPath: inPath,
    signal: ctx.signal,
    onProgress: (p) => ctx.onProgress?.({ ...p, pct: p.pct * 0.5 }),
  });
  const candidate = join(dirname(outPath), `.${basename(outPath)}.${randomBytes(4).toString('hex')}.candidate.onnx`);
  try {
    const saved = await saveModel(model, candidate);
    ctx.onProgress?.({ step: 'verify in ONNX Runtime', pct: 60 });
    const fidelity = await verifyAgainst(inPath, original, candidate, { shapes: opts.shapes }, ctx);
    const minCos = opts.minCosine ?? 0.99;
    const worst = Object.entries(fidelity).reduce((w, [k, v]) => (v.cosine < w[1] ? [k, v.cosine] as [string, number] : w), ['', 1] as [string, number]);
    if (worst[1] < minCos) {
      const msg = `output "${worst[0]}" of the compressed model has cosine similarity ${worst[1].toFixed(4)} with the original, below ${minCos}`;
      if (!opts.force) throw new EdgetuneError('COMPRESS_FIDELITY', `${opts.input}: ${msg}; nothing was written. Exclude sensitive layers (recipe.exclude) or pass --force to write it anyway.`);
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
      warnings,
    };
  } finally {
    await unlink(candidate).catch(() => {});
    await unlink(`${candidate}.data`).catch(() => {});
  }
}

/** A model with external data was saved with `<candidate>.data`; the location inside names that file. */
async function renameData(candidate: string, outPath: string): Promise<void> {
  try { await stat(`${candidate}.data`); } catch { return; }
  // The external-data location is baked into the model, so re-save rather than rename the data file.
  const m = await loadModel(outPath);
  await saveModel(m, outPath);
}
