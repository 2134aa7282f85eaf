// The contracts between modules (DESIGN.md §4). Documents that arrive from outside (recipes, jobs, config,
// targets) are schema-derived and re-exported here; documents we produce are plain interfaces.

export type { Recipe, QuantMode, SessionSettings } from './schema/recipe.js';
import type { Recipe } from './schema/recipe.js';
import type { Target } from './targets/schema.js';

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

/**
 * What `profileDevice` found. Unknown values are absent (never a made-up 0) and `notes` says why.
 * `arch` uses Node's names (`x64`, `arm64`, `arm`): it is what decides which onnxruntime binary runs.
 */
export interface DeviceProfile {
  v: 1;
  /** Stable device id: `m-` + hash of /etc/machine-id, else `s-` + hash of the board serial, else `h-<hostname>`. */
  id: string;
  /** Board name from the device tree (Raspberry Pi, Jetson) or DMI (x86), as the firmware spells it. */
  board?: string;
  arch: string;
  cpu: {
    model?: string;
    vendor?: string;
    /** Logical CPUs the OS schedules on. */
    cores?: number;
    physicalCores?: number;
    /** Distinct ARM core types in CPU order, e.g. ['Cortex-A55', 'Cortex-A76']. */
    coreTypes?: string[];
    /** Distinct maximum frequencies (MHz) in CPU order: one per cluster on big.LITTLE parts. */
    clustersMHz: number[];
    isa: IsaFeature[];
  };
  memory: { totalMB?: number; availableMB?: number };
  accelerators: string[];
  thermal: { tempC?: number; throttled?: boolean };
  os?: string;
  runtime: { node: string; onnxruntime?: string; providers: string[] };
  notes: string[];
}

// Targets arrive as files, so their type is derived from their schema (src/targets/schema.ts).
export type { Target, TargetMatch, TargetArch } from './targets/schema.js';

export interface MatchedTarget {
  target: Target;
  /** Why this target won, and (for a fallback) a line starting with `warning:`. */
  reasons: string[];
  /** True when no target's criteria held and the arch's generic target was taken anyway. */
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

/** Output agreement of a changed model with the original (worst output). */
export interface OutputAgreement {
  cosine: number;
  sqnrDb: number;
  /** argmax agreement over the last axis, when the output has more than one element there */
  top1Agreement?: number;
}

/** What a graph pass did: each change and each skip, with the reason. */
export interface PassReport {
  pass: string;
  changed: Array<{ node: string; op: string; what: string }>;
  skipped: Array<{ node: string; op: string; why: string }>;
  /**
   * prune-reconstruct: agreement with the unpruned model on the calibration examples, pruned as it was and after
   * the refit, so that a reader (or the tuner) need not parse the warning.
   */
  fidelity?: { examples: number; source: string; withoutReconstruction: OutputAgreement; withReconstruction: OutputAgreement };
}

export interface CompressReport {
  v: 1;
  recipe: Recipe;
  input: { path: string; bytes: number; sha256: string };
  output: { path: string; bytes: number; sha256: string };
  passes: PassReport[];
  fidelity: Record<string, { cosine: number; maxAbsError: number; sqnrDb: number; top1Agreement?: number }>;
  /** what the fidelity was measured on: a dataset path or "generated inputs", and how many examples */
  verifiedOn?: { source: string; examples: number };
  warnings: string[];
}
