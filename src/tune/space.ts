// The tuner's candidates: the target's search space (src/targets/space.ts) widened by a --space file, expanded to
// a grid, with the combinations that cannot differ from another one removed (and the reason kept). Pure.
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { recipeLabel } from '../schema/recipe.js';
import { spaceAxes, recipeFor, type QuantOption, type SpacePoint } from '../targets/space.js';
import type { Recipe, Target } from '../types.js';

export type { QuantOption } from '../targets/space.js';
type GraphOpt = 'disabled' | 'basic' | 'extended' | 'all';
type ExecMode = 'sequential' | 'parallel';

const QuantOptionSchema = Type.Union(
  (['fp32', 'dynamic', 'fp16', 'static', 'weight-only-4', 'weight-only-8'] as const).map((q) => Type.Literal(q)),
);

/**
 * A --space file: any axis given replaces the target's; `fallback` (sensitive layers kept fp32 by
 * recipe.quantize.fallback.worstK), `depthwise` (static int8 with depthwise convs kept fp32 when false) and
 * `executionMode` exist only here because targets do not state them.
 */
export const SpaceFileSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    quant: Type.Optional(Type.Array(QuantOptionSchema, { minItems: 1, uniqueItems: true })),
    threads: Type.Optional(Type.Array(Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal('all')]), { minItems: 1, uniqueItems: true })),
    prune: Type.Optional(Type.Array(Type.Number({ minimum: 0, maximum: 0.95 }), { uniqueItems: true })),
    lowrankEnergy: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), { uniqueItems: true })),
    graphOptimizationLevel: Type.Optional(Type.Array(Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all')]), { minItems: 1, uniqueItems: true })),
    spinning: Type.Optional(Type.Array(Type.Boolean(), { minItems: 1, uniqueItems: true })),
    executionMode: Type.Optional(Type.Array(Type.Union([Type.Literal('sequential'), Type.Literal('parallel')]), { minItems: 1, uniqueItems: true })),
    fallback: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 64 }), { uniqueItems: true })),
    /** static int8 with depthwise convs quantized (true) and/or kept fp32 (false); default [true] */
    depthwise: Type.Optional(Type.Array(Type.Boolean(), { minItems: 1, uniqueItems: true })),
    /** refit pruned layers on calibration data (default: when there is data) */
    reconstruct: Type.Optional(Type.Boolean()),
    /** refuse grids larger than this (default 512) */
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  },
  { additionalProperties: false },
);
export type SpaceFile = Static<typeof SpaceFileSchema>;

export interface TuneAxes {
  quant: QuantOption[];
  threads: number[];
  prune: number[];
  lowrankEnergy: Array<number | undefined>;
  graphOptimizationLevel: Array<GraphOpt | undefined>;
  spinning: Array<boolean | undefined>;
  executionMode: Array<ExecMode | undefined>;
  fallback: number[];
  /** recipe.quantize.depthwise values for static int8; absent = [true] */
  depthwise?: boolean[];
}

export interface TunePoint extends SpacePoint {
  executionMode?: ExecMode;
  /** sensitive layers kept fp32 (recipe.quantize.fallback.worstK); 0 = none */
  fallback?: number;
  /** false: static int8 keeps depthwise convs fp32 (recipe.quantize.depthwise); absent = quantized */
  depthwise?: false;
}

export interface Candidate {
  /** stable across runs: the journal's key for this candidate */
  id: string;
  label: string;
  point: TunePoint;
  recipe: Recipe;
  /** candidates with the same modelKey share one compressed file (they differ only in session settings) */
  modelKey: string;
  /** the compression steps before quantization: models sharing it share that intermediate */
  stemKey: string;
}

export interface SkippedCandidate { label: string; why: string }

/** A stand-in target for callers that only have a space (the agent passes `target.space`). */
export function targetFromSpace(space: Target['space'] | undefined, name = 'custom'): Target {
  return {
    v: 1, name, match: {}, notes: 'built from a bare search space', defaults: { threads: 'all' },
    space: space ?? { quant: ['fp32', 'dynamic', 'fp16'], threads: [1, 'all'] }, priors: {}, sources: ['(none)'],
  };
}

/** The axes to search on a device with `cores` CPUs: the target's, with a --space file's axes in their place. */
export function tuneAxes(target: Target, cores: number, file?: SpaceFile): TuneAxes {
  const a = spaceAxes(target, cores);
  const f = file ?? { v: 1 };
  const threads = f.threads
    ? [...new Set(f.threads.map((t) => (t === 'all' ? cores : t)))].sort((x, y) => x - y)
    : a.threads;
  return {
    // fp32 always comes first: it is the baseline and the fidelity reference.
    quant: f.quant ? [...new Set<QuantOption>(['fp32', ...f.quant])] : a.quant,
    threads,
    prune: f.prune ? [0, ...f.prune.filter((r) => r > 0)] : a.prune,
    lowrankEnergy: f.lowrankEnergy ? [undefined, ...f.lowrankEnergy] : a.lowrankEnergy,
    graphOptimizationLevel: f.graphOptimizationLevel ?? a.graphOptimizationLevel,
    spinning: f.spinning ?? a.spinning,
    executionMode: f.executionMode ?? [undefined],
    fallback: f.fallback ? [...new Set([0, ...f.fallback])] : [0],
    depthwise: f.depthwise ?? [true],
  };
}

/**
 * The depthwise axis, fitted to the model: with static int8 in the space and depthwise convs in the model, static is
 * also tried with them kept fp32 unless a --space file chose (int8 depthwise convs ran 1.4× slower than fp32 on one
 * real model here and faster on others, so the device decides); without depthwise convs that variant is the same
 * model, so it is dropped. Pure: the caller counts the convs (depthwiseConvCount).
 */
export function fitDepthwiseAxis(axes: TuneAxes, depthwiseConvs: number, fromFile: boolean): { axes: TuneAxes; note?: string } {
  if (!axes.quant.includes('static')) return { axes };
  const dw = axes.depthwise ?? [true];
  if (depthwiseConvs === 0 && dw.includes(false)) {
    const kept = dw.filter((d) => d);
    return { axes: { ...axes, depthwise: kept.length ? kept : [true] }, note: 'the model has no depthwise convs: "depthwise": false would give the same model as static int8, so it is not tried' };
  }
  if (depthwiseConvs > 0 && !fromFile && !dw.includes(false)) {
    return { axes: { ...axes, depthwise: [true, false] }, note: `the model has ${depthwiseConvs} depthwise conv(s): static int8 is also tried with them kept fp32 (int8 depthwise convs are slower than fp32 on some CPUs)` };
  }
  return { axes };
}

export function axesSize(a: TuneAxes): number {
  return a.quant.length * a.threads.length * a.prune.length * a.lowrankEnergy.length * a.graphOptimizationLevel.length *
    a.spinning.length * a.executionMode.length * a.fallback.length * (a.depthwise ?? [true]).length;
}

const QUANTIZED = new Set<QuantOption>(['dynamic', 'static', 'weight-only-4', 'weight-only-8']);

/** Why a point is not worth measuring (it cannot differ from a point kept), or undefined. */
export function uselessBecause(p: TunePoint, axes: TuneAxes): string | undefined {
  if ((p.fallback ?? 0) > 0 && !QUANTIZED.has(p.quant)) return `${p.quant} quantizes nothing, so no layer can fall back`;
  if (p.depthwise === false && p.quant !== 'static') return `${p.quant} has no int8 depthwise convs to keep fp32 (only static int8 quantizes them)`;
  // One intra-op thread means no thread pool: spinning has nothing to spin; keep the first spinning value only.
  if (p.threads === 1 && p.spinning !== undefined && p.spinning !== axes.spinning[0]) return 'one thread has no thread pool to spin';
  return undefined;
}

function sessionLabel(p: TunePoint, axes: TuneAxes): string {
  const parts = [`t${p.threads}`];
  if (axes.graphOptimizationLevel.length > 1 && p.graphOptimizationLevel) parts.push(`opt-${p.graphOptimizationLevel}`);
  if (axes.spinning.length > 1 && p.spinning !== undefined && p.threads > 1) parts.push(p.spinning ? 'spin' : 'nospin');
  if (axes.executionMode.length > 1 && p.executionMode) parts.push(p.executionMode === 'parallel' ? 'par' : 'seq');
  return parts.join(' ');
}

export function modelKeyOf(p: TunePoint): string {
  // '|dw0' only when set, so journals written before the depthwise axis keep their keys.
  return `${p.quant}|p${p.prune ?? 0}|lr${p.lowrankEnergy ?? '-'}|fb${p.fallback ?? 0}${p.depthwise === false ? '|dw0' : ''}`;
}

export function stemKeyOf(p: Pick<TunePoint, 'prune' | 'lowrankEnergy'>): string {
  return `p${p.prune ?? 0}|lr${p.lowrankEnergy ?? '-'}`;
}

/**
 * The recipe for a point: the target's (src/targets/space.ts) plus execution mode, sensitive-layer fallback and,
 * with `reconstruct`, pruned layers refitted on calibration data (without it pruning costs far more accuracy).
 */
export function tuneRecipe(target: Target, p: TunePoint, o: { reconstruct?: boolean } = {}): Recipe {
  const r = recipeFor(target, p);
  if (r.prune && o.reconstruct) r.prune = { ...r.prune, reconstruct: true };
  if (p.executionMode) r.session = { ...r.session, executionMode: p.executionMode };
  if ((p.fallback ?? 0) > 0 && r.quantize) r.quantize = { ...r.quantize, fallback: { worstK: p.fallback } };
  if (p.depthwise === false && r.quantize) r.quantize = { ...r.quantize, depthwise: false };
  return r;
}

/**
 * Every point of the grid as a candidate, fp32 first, plus the points dropped as useless. Throws RangeError when
 * the grid is larger than `max` (restrict it with a --space file).
 */
export function buildCandidates(target: Target, axes: TuneAxes, o: { max?: number; reconstruct?: boolean } = {}): { candidates: Candidate[]; skipped: SkippedCandidate[] } {
  const max = o.max ?? 512;
  const n = axesSize(axes);
  if (n > max) throw new RangeError(`the search space has ${n} points (more than ${max}); restrict it with a --space file (see docs/tuning.md)`);
  const candidates: Candidate[] = [];
  const skipped: SkippedCandidate[] = [];
  for (const quant of axes.quant)
    for (const prune of axes.prune)
      for (const lowrankEnergy of axes.lowrankEnergy)
        for (const fallback of axes.fallback)
          for (const depthwise of axes.depthwise ?? [true])
            for (const graphOptimizationLevel of axes.graphOptimizationLevel)
              for (const spinning of axes.spinning)
                for (const executionMode of axes.executionMode)
                  for (const threads of axes.threads) {
                    const point: TunePoint = {
                      quant, threads,
                      ...(prune ? { prune } : {}),
                      ...(lowrankEnergy !== undefined ? { lowrankEnergy } : {}),
                      ...(graphOptimizationLevel ? { graphOptimizationLevel } : {}),
                      ...(spinning !== undefined ? { spinning } : {}),
                      ...(executionMode ? { executionMode } : {}),
                      ...(fallback ? { fallback } : {}),
                      ...(depthwise === false ? { depthwise } : {}),
                    };
                    const recipe = tuneRecipe(target, point, o);
                    const fb = `${fallback ? `-fb${fallback}` : ''}${depthwise === false ? '-dwfp32' : ''}`;
                    const label = `${recipeLabel({ ...recipe, session: undefined })}${fb} ${sessionLabel(point, axes)}`;
                    const why = uselessBecause(point, axes);
                    if (why) { skipped.push({ label, why }); continue; }
                    candidates.push({ id: candidateId(point), label, point, recipe, modelKey: modelKeyOf(point), stemKey: stemKeyOf(point) });
                  }
  return { candidates, skipped };
}

export function candidateId(p: TunePoint): string {
  return `${modelKeyOf(p)}|t${p.threads}|o${p.graphOptimizationLevel ?? '-'}|s${p.spinning ?? '-'}|e${p.executionMode ?? '-'}`;
}

/** The grid point a recipe corresponds to, as far as the latency model needs it. */
export function pointOfRecipe(r: Recipe): TunePoint {
  const q = r.quantize;
  const quant: QuantOption = !q ? 'fp32' : q.mode === 'weight-only' ? (q.bits === 8 ? 'weight-only-8' : 'weight-only-4') : q.mode;
  const s = r.session ?? {};
  return {
    quant, threads: s.intraOpThreads ?? 1,
    ...(r.prune && r.prune.ratio > 0 ? { prune: r.prune.ratio } : {}),
    ...(r.lowrank ? { lowrankEnergy: r.lowrank.energy ?? r.lowrank.ratio ?? 0.95 } : {}),
    ...(s.graphOptimizationLevel ? { graphOptimizationLevel: s.graphOptimizationLevel } : {}),
    ...(s.spinning !== undefined ? { spinning: s.spinning } : {}),
    ...(s.executionMode ? { executionMode: s.executionMode } : {}),
    ...(q?.fallback?.worstK ? { fallback: q.fallback.worstK } : {}),
    ...(q?.mode === 'static' && q.depthwise === false ? { depthwise: false as const } : {}),
  };
}

/**
 * Candidates for an explicit recipe list (a fleet share): each recipe as given. Recipes are compressed as a whole,
 * so each has its own model key (by content) unless two differ only in their session block.
 */
export function candidatesFromRecipes(recipes: Recipe[]): Candidate[] {
  const fp32 = modelKeyOf({ quant: 'fp32', threads: 1 });
  return recipes.map((recipe) => {
    const { session, ...rest } = recipe;
    const plain = !rest.prune && !rest.lowrank && !rest.quantize;
    const modelKey = plain ? fp32 : `r${hash(rest).slice(0, 16)}`;
    const stem = { prune: rest.prune, lowrank: rest.lowrank, exclude: rest.exclude };
    const stemKey = !stem.prune && !stem.lowrank ? stemKeyOf({}) : `s${hash(stem).slice(0, 16)}`;
    return {
      id: `${modelKey}|${hash(session ?? {}).slice(0, 12)}`, label: recipeLabel(recipe), recipe, modelKey, stemKey,
      point: pointOfRecipe(recipe),
    };
  });
}

/**
 * The fp32 candidate the others are compared with: the target's default session where the grid has it (ONNX
 * Runtime's own default, 'all', when the target names no optimisation level), else the one with the most threads.
 */
export function baselineOf(candidates: Candidate[], target: Target, cores: number): Candidate | undefined {
  const fp32 = candidates.filter((c) => c.modelKey === modelKeyOf({ quant: 'fp32', threads: 1 }));
  if (!fp32.length) return undefined;
  const d = target.defaults;
  const th = d.threads === 'all' ? cores : d.threads;
  const score = (c: Candidate) =>
    (c.point.threads === th ? 4 : 0) + ((c.point.graphOptimizationLevel ?? 'all') === (d.graphOptimizationLevel ?? 'all') ? 2 : 0) + (c.point.spinning === d.spinning ? 1 : 0);
  return [...fp32].sort((a, b) => score(b) - score(a) || b.point.threads - a.point.threads)[0];
}

/** A short stable hash of any JSON value (key order matters: build values in a fixed order). */
export function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex');
}

/** The first tuner's quantization choices (kept for scripts that still name them). */
export type QuantChoice = 'fp32' | 'dynamic' | 'fp16';

/** Recipe for one of those choices; fp32 means "no compression step". */
export function quantRecipe(q: QuantChoice): Recipe {
  if (q === 'dynamic') return { v: 1, quantize: { mode: 'dynamic', perChannel: true } };
  if (q === 'fp16') return { v: 1, quantize: { mode: 'fp16', perChannel: false } };
  return { v: 1 };
}
