import type { PlainTensor } from '../plain-tensor.js';

/** One batch of model inputs, by input name, with labels when the dataset has them. */
export interface DataBatch {
  feeds: Record<string, PlainTensor>;
  labels?: ArrayLike<number>;
}

/**
 * Examples for calibration, evaluation and reconstruction, streamed in batches so a large set never sits in memory.
 * `batches()` may be called more than once (each call starts from the beginning).
 */
export interface DataSource {
  /** where it came from, for messages: a path, "generated", … */
  name: string;
  /** number of examples, when known */
  count?: number;
  batches(opts?: { batchSize?: number; limit?: number; signal?: AbortSignal }): AsyncIterable<DataBatch>;
}
