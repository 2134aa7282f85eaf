// Messages between ModelRunner (parent) and runner-child over the IPC channel (advanced serialization, so typed
// arrays and BigInt64Array cross as they are). Every request carries an id; the child answers each id exactly once
// with `ok` or `error`, and may send `progress` for it before that.
import type { SessionSettings as RecipeSessionSettings } from '../schema/recipe.js';
import type { BenchPlan, StopReason } from './bench-plan.js';
import type { PlainDtype, PlainTensor } from './plain-tensor.js';
import type { TensorStatsSnapshot } from '../compress/calibrate/histogram.js';

/**
 * ONNX Runtime session options a measurement may set: the recipe's session block (intra/inter-op threads, graph
 * optimisation level, execution mode, thread-pool spinning).
 */
export type SessionSettings = RecipeSessionSettings;

export type RunnerRequest =
  | { id: number; kind: 'load'; modelPath: string; session: SessionSettings }
  | { id: number; kind: 'run'; inputs: Record<string, PlainTensor> }
  | { id: number; kind: 'bench'; inputs: Record<string, PlainTensor>; plan: BenchPlan }
  | { id: number; kind: 'rss' }
  // Calibration: run, fold `names` (outputs, or inputs from the feeds) into statistics kept in the child, so a
  // batch's activations never cross the IPC channel; 'stats' hands the statistics over and forgets them.
  | { id: number; kind: 'observe'; inputs: Record<string, PlainTensor>; names: string[]; histogram: boolean }
  | { id: number; kind: 'stats' };

export interface LoadReply {
  loadMs: number;
  inputNames: string[];
  outputNames: string[];
  /** the child's peak RSS once onnxruntime was imported but before the session existed: Node + ORT alone */
  baseRssKB: number;
}
export interface BenchReply {
  samplesMs: number[];
  /** the first inference at these input shapes in this process (allocation, kernel choice); never a sample */
  firstRunMs: number;
  /** runs before the timed ones in this call, including that first run when it happened here */
  warmupRuns: number;
  warmupMs: number;
  timedWallMs: number;
  stopReason: StopReason;
  /** width of the 95 % CI of the median over the median, at the end (Infinity below 6 samples) */
  ciRelWidth: number;
}
export interface RssReply { maxRssKB: number }
export type RunReply = Record<string, PlainTensor>;
/** the dtype of each observed name this run produced (only float32 ones get statistics) */
export interface ObserveReply { dtypes: Record<string, PlainDtype> }
export type StatsReply = Record<string, TensorStatsSnapshot>;

export type RunnerReply =
  | { id: number; kind: 'ok'; value: unknown }
  | { id: number; kind: 'error'; message: string }
  | { id: number; kind: 'progress'; phase: 'warm-up' | 'timed'; runs: number; elapsedMs: number; fraction: number };
