// The cheap proxies for every distinct compressed model of the space: its file (compressed once, shared by every
// session setting), size, MACs and quality. Compression runs prune/low-rank once per "stem" and quantizes on top of
// it, so a 3×3 prune/low-rank grid does 9 SVD/pruning passes, not 9 per quantization mode.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CanceledError, EdgetuneError, errorMessage, throwIfAborted } from '../errors.js';
import { loadModel, saveModel, sha256, type OnnxModel } from '../onnx/model.js';
import { applyRecipe } from '../compress/pipeline.js';
import type { DataSource } from '../measure/datasets/source.js';
import type { PlainTensor } from '../measure/plain-tensor.js';
import type { OpContext, PassReport, Recipe } from '../types.js';
import type { ModelRecord } from './journal.js';
import { countMacs, probeShapes } from './macs.js';
import { evaluateFile, type EvalSet } from './quality.js';
import { hash, stemKeyOf, type Candidate } from './space.js';

export interface PrepareContext {
  original: OnnxModel;
  originalPath: string;
  originalSha: string;
  workDir: string;
  evalSet: EvalSet;
  /** calibration / reconstruction examples (kept apart from the evaluation examples) */
  calib?: DataSource;
  /** inputs for the MACs probe */
  inputs: Record<string, PlainTensor>;
  /** the classifier output, when the data names one */
  output?: string;
  /** input shapes for dynamic dims (--shape): calibration and reconstruction without data generate inputs of them */
  shapes?: Record<string, number[]>;
}

interface Stem { model: OnnxModel; file: string; changed: boolean; macs?: number; notes: string[] }

const summarize = (passes: PassReport[]) => passes.map((p) => `${p.pass}: ${p.changed.length} changed, ${p.skipped.length} skipped`);
const FP32_STEM = stemKeyOf({});

/** Errors that mean "this candidate cannot be built here" (skip it, say why) rather than "stop the tune". */
function skipReason(e: unknown): string {
  if (e instanceof CanceledError) throw e;
  if (e instanceof EdgetuneError) return e.code === 'USAGE' ? errorMessage(e) : `${e.code}: ${errorMessage(e)}`;
  return `compression failed: ${errorMessage(e)}`;
}

/** Builds and evaluates models on demand, remembering files, stems and content hashes. */
export class ModelStore {
  private readonly stems = new Map<string, Stem | { error: string }>();
  private readonly bySha = new Map<string, string>();
  private shapes?: Map<string, number[]>;
  private reference?: Array<Record<string, PlainTensor>>;
  private readonly files = new Map<string, string>();

  constructor(private readonly p: PrepareContext) {}

  fileOf(key: string): string | undefined {
    return this.files.get(key);
  }

  private pathFor(key: string): string {
    return join(this.p.workDir, 'models', `m-${hash(key).slice(0, 16)}.onnx`);
  }

  /** Marks a replayed record's content as seen, so later duplicates are recognised. */
  remember(r: ModelRecord): void {
    if (r.status === 'ok' && r.sha256 && !this.bySha.has(r.sha256)) this.bySha.set(r.sha256, r.key);
  }

  /** The fp32 reference outputs (and the baseline's own quality): one run of the original model. */
  async referenceQuality(ctx: OpContext): Promise<ModelRecord['quality']> {
    const run = await evaluateFile(this.p.originalPath, this.p.evalSet, undefined, { output: this.p.output }, ctx);
    this.reference = run.outputs;
    return run.quality;
  }

  private async macsOf(model: OnnxModel, ctx: OpContext): Promise<{ macs?: number; notes: string[] }> {
    try {
      this.shapes ??= await probeShapes(this.p.original, this.p.inputs, this.p.workDir, ctx);
    } catch (e) {
      if (e instanceof CanceledError) throw e;
      this.shapes = new Map();
      return { notes: [`MACs not counted: the shape probe failed (${errorMessage(e)})`] };
    }
    const c = countMacs(model, this.shapes);
    const notes = c.uncounted.length ? [`MACs leave out ${c.uncounted.length} node(s): ${c.uncounted.slice(0, 3).join('; ')}${c.uncounted.length > 3 ? '; …' : ''}`] : [];
    return { ...(c.macs !== undefined ? { macs: c.macs } : {}), notes };
  }

  private async stem(c: Candidate, ctx: OpContext): Promise<Stem | { error: string }> {
    const known = this.stems.get(c.stemKey);
    if (known) return known;
    let s: Stem | { error: string };
    if (c.stemKey === FP32_STEM) {
      const m = await this.macsOf(this.p.original, ctx);
      s = { model: this.p.original, file: this.p.originalPath, changed: false, ...m };
    } else {
      const recipe: Recipe = { v: 1, ...(c.recipe.prune ? { prune: c.recipe.prune } : {}), ...(c.recipe.lowrank ? { lowrank: c.recipe.lowrank } : {}), ...(c.recipe.exclude ? { exclude: c.recipe.exclude } : {}) };
      try {
        const r = await applyRecipe(this.p.original, recipe, { modelPath: this.p.originalPath, data: this.p.calib, workDir: this.p.workDir, shapes: this.p.shapes, signal: ctx.signal });
        const file = join(this.p.workDir, 'models', `stem-${hash(c.stemKey).slice(0, 16)}.onnx`);
        await saveModel(r.model, file);
        // Calibration (static int8) runs the stem in ONNX Runtime: give it the saved copy as its own model.
        const model = await loadModel(file);
        const m = await this.macsOf(model, ctx);
        s = { model, file, changed: r.passes.some((x) => x.changed.length > 0), macs: m.macs, notes: [...summarize(r.passes), ...r.warnings, ...m.notes] };
      } catch (e) {
        s = { error: skipReason(e) };
      }
    }
    this.stems.set(c.stemKey, s);
    return s;
  }

  /**
   * The record for `c`'s model: compressed, loaded in ONNX Runtime and evaluated; or skipped (with why); or a
   * duplicate of an earlier model with the same content. `replayed` (from the journal) is trusted when its file is
   * still there or is rebuilt to the same content.
   */
  async build(c: Candidate, ctx: OpContext, replayed?: ModelRecord): Promise<ModelRecord> {
    // A model skipped in an earlier run is built again: its cause may be gone (a bug fixed by an upgrade, a file now
    // readable). Only the same skip, for the same reason, keeps the journaled record (so nothing new is journaled).
    if (replayed?.status === 'skipped') {
      const again = await this.buildFresh(c, ctx);
      return again.status === 'skipped' && again.reason === replayed.reason ? replayed : again;
    }
    return this.buildFresh(c, ctx, replayed);
  }

  private async buildFresh(c: Candidate, ctx: OpContext, replayed?: ModelRecord): Promise<ModelRecord> {
    throwIfAborted(ctx.signal, 'tune');
    await mkdir(join(this.p.workDir, 'models'), { recursive: true });
    if (replayed && replayed.status !== 'ok') return replayed;
    if (replayed?.sha256 && (await this.sameFile(replayed.key, replayed.sha256))) return replayed;
    const stem = await this.stem(c, ctx);
    if ('error' in stem) return { key: c.modelKey, status: 'skipped', reason: stem.error };
    let model = stem.model;
    let file = stem.file;
    const notes = [...stem.notes];
    if (c.recipe.quantize) {
      try {
        const r = await applyRecipe(stem.model, { v: 1, quantize: c.recipe.quantize, ...(c.recipe.exclude ? { exclude: c.recipe.exclude } : {}) },
          { modelPath: stem.file, data: this.p.calib, workDir: this.p.workDir, shapes: this.p.shapes, signal: ctx.signal });
        notes.push(...summarize(r.passes), ...r.warnings);
        if (r.passes.every((x) => x.changed.length === 0)) {
          return { key: c.modelKey, status: 'duplicate', reason: `quantization (${c.recipe.quantize.mode}) changed nothing in this model`, duplicateOf: `${stem.file === this.p.originalPath ? 'fp32' : 'the unquantized stem'}`, warnings: notes };
        }
        model = r.model;
        file = this.pathFor(c.modelKey);
        await saveModel(model, file);
      } catch (e) {
        return { key: c.modelKey, status: 'skipped', reason: skipReason(e), warnings: notes };
      }
    } else if (c.stemKey !== FP32_STEM && !stem.changed) {
      return { key: c.modelKey, status: 'duplicate', reason: 'pruning/low-rank changed nothing in this model', duplicateOf: 'fp32', warnings: notes };
    }
    const bytes = await readFile(file);
    const sha = sha256(bytes);
    if (replayed?.sha256 && replayed.sha256 !== sha) notes.push('rebuilt after a restart with different content than journaled: quality re-evaluated');
    else if (replayed?.sha256) { this.files.set(c.modelKey, file); return replayed; }
    const dup = this.bySha.get(sha);
    if (dup && dup !== c.modelKey) return { key: c.modelKey, status: 'duplicate', reason: `same file as ${dup}`, duplicateOf: dup, sha256: sha, bytes: bytes.length, warnings: notes };
    this.bySha.set(sha, c.modelKey);
    this.files.set(c.modelKey, file);
    let quality;
    try {
      if (file === this.p.originalPath) quality = await this.referenceQuality(ctx);
      else {
        if (!this.reference) await this.referenceQuality(ctx);
        quality = (await evaluateFile(file, this.p.evalSet, this.reference, { output: this.p.output }, ctx)).quality;
      }
    } catch (e) {
      return { key: c.modelKey, status: 'skipped', reason: `ONNX Runtime could not run it: ${skipReason(e)}`, sha256: sha, bytes: bytes.length, warnings: notes };
    }
    return { key: c.modelKey, status: 'ok', sha256: sha, bytes: bytes.length, ...(stem.macs !== undefined ? { macs: stem.macs } : {}), quality, warnings: notes };
  }

  /** Is the file for `key` (the original for fp32) on disk with this content? Registers it when so. */
  private async sameFile(key: string, sha: string): Promise<boolean> {
    const candidates = sha === this.p.originalSha ? [this.p.originalPath] : [this.pathFor(key)];
    for (const f of candidates) {
      try {
        if (!(await stat(f)).isFile()) continue;
        if (sha256(await readFile(f)) === sha) { this.files.set(key, f); return true; }
      } catch { /* not there: rebuild */ }
    }
    return false;
  }
}
