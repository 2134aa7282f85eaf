// Messages between ModelRunner (parent) and runner-child over the IPC channel (advanced serialization, so typed
// arrays and BigInt64Array cross as they are). Every request carries an id; the child answers each id exactly once
// with `ok` or `error`, and may send `progress` for it before that.
import type { SessionSettings as RecipeSessionSettings } from '../schema/recipe.js';
import type { BenchPlan } from './bench-plan.js';
import type { PlainTensor } from './plain-tensor.js';

/** ONNX Runtime session options a measurement may set; the recipe's session block is a subset. */
export interface SessionSettings extends RecipeSessionSettings {
  interOpThreads?: number;
  executionMode?: 'sequential' | 'parallel';
}

export type RunnerRequest =
  | { id: number; kind: 'load'; modelPath: string; session: SessionSettings }
  | { id: number; kind: 'run'; inputs: Record<string, PlainTensor> }
  | { id: number; kind: 'bench'; inputs: Record<string, PlainTensor>; plan: BenchPlan }
  | { id: number; kind: 'rss' };

export interface LoadReply { loadMs: number; inputNames: string[]; outputNames: string[] }
export interface BenchReply { samplesMs: number[]; firstRunMs: number; warmupRuns: number; timedWallMs: number }
export interface RssReply { maxRssKB: number }
export type RunReply = Record<string, PlainTensor>;

export type RunnerReply =
  | { id: number; kind: 'ok'; value: unknown }
  | { id: number; kind: 'error'; message: string }
  | { id: number; kind: 'progress'; phase: 'warm-up' | 'timed'; runs: number; elapsedMs: number; fraction: number };
