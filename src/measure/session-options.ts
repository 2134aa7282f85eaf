// Our session settings → ONNX Runtime's SessionOptions. Pure, so it is testable without starting a runner.
import type { InferenceSession } from 'onnxruntime-node';
import type { SessionSettings } from './runner-protocol.js';

/**
 * Thread-pool spinning has no SessionOptions field: it is the config entry `session.intra_op.allow_spinning` (and
 * `inter_op`), passed through `extra`, which onnxruntime-node flattens into dotted keys.
 */
export function sessionOptionsOf(s: SessionSettings): InferenceSession.SessionOptions {
  const options: InferenceSession.SessionOptions = { logSeverityLevel: 3 };
  if (s.intraOpThreads !== undefined) options.intraOpNumThreads = s.intraOpThreads;
  if (s.interOpThreads !== undefined) options.interOpNumThreads = s.interOpThreads;
  if (s.graphOptimizationLevel !== undefined) options.graphOptimizationLevel = s.graphOptimizationLevel;
  if (s.executionMode !== undefined) options.executionMode = s.executionMode;
  if (s.spinning !== undefined) {
    const v = s.spinning ? '1' : '0';
    options.extra = { session: { intra_op: { allow_spinning: v }, inter_op: { allow_spinning: v } } };
  }
  return options;
}
