// The contracts between modules (DESIGN.md §4). Documents that arrive from outside (recipes, jobs, config,
// targets) are schema-derived and re-exported here; documents we produce are plain interfaces.

export type { Recipe, QuantMode, SessionSettings } from './schema/recipe.js';
import type { Recipe } from './schema/recipe.js';

/** Progress of a long operation. `pct` is 0..100 for the whole operation. */
export interface Progress {
  step: string;
  pct: number;
  etaS?: number;
  detail?: string;
}
export type ProgressFn = (p: Progress) => void;

/** What every long operation takes: a way to cancel and a way to report progress. */
export interface OpContext {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export type IsaFeature =
  | 'neon' | 'dotprod' | 'i8mm' | 'fp16' | 'bf16' | 'sve'
  | 'sse4_2' | 'avx' | 'avx2' | 'fma' | 'avx512' | 'vnni' | 'amx';

export interface DeviceProfile {
  v: 1;
  id: string;
  board?: string;
  arch: string;
  cpu: { model?: string; cores: number; clustersMHz: number[]; isa: IsaFeature[] };
  memory: { totalMB: number; availableMB: number };
  accelerators: string[];
  thermal: { tempC?: number; throttled?: boolean };
  os: string;
  runtime: { node: string; onnxruntime: string; providers: string[] };
  notes: string[];
}

export interface TargetMatch {
  arch?: string[];
  boardIncludes?: string[];
  isaAll?: IsaFeature[];
  isaNone?: IsaFeature[];
}

export interface Target {
  name: string;
  match: TargetMatch;
  notes: string;
  defaults: { threads: number | 'all' };
  space: { quant: Array<'fp32' | 'dynamic' | 'fp16'>; threads: Array<number | 'all'> };
  priors: Record<string, number | string>;
  sources: string[];
}

export interface MatchedTarget {
  target: Target;
  reasons: string[];
  fallback: boolean;
}

export interface LatencyStats {
  p50: number; p90: number; p95: number; p99: number;
  mean: number; std: number; cv: number; n: number;
  ci95p50: [number, number];
}

export interface Quality {
  accuracy?: number;
  top1Agreement?: number;
  cosine?: number;
  sqnrDb?: number;
  maxAbsError?: number;
}

export interface Measurement {
  v: 1;
  recipe: Recipe;
  label: string;
  model: { sha256: string; bytes: number };
  latencyMs: LatencyStats;
  loadMs: number;
  firstRunMs: number;
  peakRssMB: number;
  throttled: boolean | null;
  quality: Quality;
}

export interface TuneBudget {
  latencyMs: number;
  percentile: 50 | 90 | 95 | 99;
  memoryMB?: number;
  maxAccuracyDrop?: number;
}

export interface TuneResult {
  v: 1;
  device: { id: string; target: string };
  model: { path: string; sha256: string; bytes: number };
  budget: TuneBudget;
  baseline: Measurement;
  chosen: Measurement | null;
  output?: string;
  infeasible?: { reason: string; best: Measurement };
  front: Measurement[];
  trials: Measurement[];
  wallS: number;
}

/** What a graph pass did: each change and each skip, with the reason. */
export interface PassReport {
  pass: string;
  changed: Array<{ node: string; op: string; what: string }>;
  skipped: Array<{ node: string; op: string; why: string }>;
}

export interface CompressReport {
  v: 1;
  recipe: Recipe;
  input: { path: string; bytes: number; sha256: string };
  output: { path: string; bytes: number; sha256: string };
  passes: PassReport[];
  fidelity: Record<string, { cosine: number; maxAbsError: number; sqnrDb: number }>;
  warnings: string[];
}
