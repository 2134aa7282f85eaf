// The child process that owns one ONNX Runtime session. ONNX Runtime blocks the thread that calls it, so it runs
// here and never on the parent's event loop. Started by ModelRunner via child_process.fork; speaks runner-protocol.
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { timedDone, timedFraction, warmupDone, type BenchPlan } from './bench-plan.js';
import type { PlainTensor } from './plain-tensor.js';
import type { BenchReply, LoadReply, RunnerReply, RunnerRequest, RssReply, SessionSettings } from './runner-protocol.js';

type Ort = typeof import('onnxruntime-node');

const PROGRESS_EVERY_MS = 100;

let ort: Ort | undefined;
let session: InferenceSession | undefined;
let firstRunMs: number | undefined;

function send(msg: RunnerReply): void {
  process.send?.(msg);
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function load(modelPath: string, s: SessionSettings): Promise<LoadReply> {
  // Imported here rather than at the top so a broken native binding becomes an error reply, not a silent crash.
  ort ??= await import('onnxruntime-node');
  ort.env.logLevel = 'error';
  const options: InferenceSession.SessionOptions = { logSeverityLevel: 3 };
  if (s.intraOpThreads !== undefined) options.intraOpNumThreads = s.intraOpThreads;
  if (s.interOpThreads !== undefined) options.interOpNumThreads = s.interOpThreads;
  if (s.graphOptimizationLevel !== undefined) options.graphOptimizationLevel = s.graphOptimizationLevel;
  if (s.executionMode !== undefined) options.executionMode = s.executionMode;
  const t0 = process.hrtime.bigint();
  session = await ort.InferenceSession.create(modelPath, options);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { loadMs, inputNames: [...session.inputNames], outputNames: [...session.outputNames] };
}

function feedsOf(inputs: Record<string, PlainTensor>): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort!.Tensor(t.dtype, t.data, t.dims);
  return feeds;
}

/** One inference, timed around session.run only; the first one in this process is also kept as firstRunMs. */
async function timedRun(feeds: Record<string, Tensor>): Promise<{ ms: number; outputs: InferenceSession.ReturnType }> {
  const t0 = process.hrtime.bigint();
  const outputs = await session!.run(feeds);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  firstRunMs ??= ms;
  return { ms, outputs };
}

function plainOf(name: string, t: Tensor): PlainTensor {
  if (t.type === 'string' || t.type === 'int4' || t.type === 'uint4') {
    throw new Error(`output "${name}" has type ${t.type}, which edgetune does not read back`);
  }
  let data = t.data as PlainTensor['data'];
  // A view into a larger buffer would drag the whole buffer across IPC; copy just the view.
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice() as PlainTensor['data'];
  return { dtype: t.type as PlainTensor['dtype'], dims: [...t.dims], data };
}

async function run(inputs: Record<string, PlainTensor>): Promise<Record<string, PlainTensor>> {
  const { outputs } = await timedRun(feedsOf(inputs));
  const out: Record<string, PlainTensor> = {};
  for (const [name, t] of Object.entries(outputs)) out[name] = plainOf(name, t as Tensor);
  return out;
}

async function bench(id: number, inputs: Record<string, PlainTensor>, plan: BenchPlan): Promise<BenchReply> {
  const feeds = feedsOf(inputs);
  let warm = 0;
  // The very first inference pays for lazy allocation and kernel selection: report it, never sample it.
  if (firstRunMs === undefined) { await timedRun(feeds); warm = 1; }
  let lastReport = 0;
  const warmStart = nowMs();
  while (!warmupDone(plan, warm, nowMs() - warmStart)) {
    await timedRun(feeds);
    warm++;
    const t = nowMs();
    if (t - lastReport >= PROGRESS_EVERY_MS) {
      lastReport = t;
      send({ id, kind: 'progress', phase: 'warm-up', runs: warm, elapsedMs: t - warmStart, fraction: 0 });
    }
  }
  const samplesMs: number[] = [];
  const start = nowMs();
  let elapsed = 0;
  while (!timedDone(plan, samplesMs.length, elapsed)) {
    samplesMs.push((await timedRun(feeds)).ms);
    const t = nowMs();
    elapsed = t - start;
    if (t - lastReport >= PROGRESS_EVERY_MS) {
      lastReport = t;
      send({ id, kind: 'progress', phase: 'timed', runs: samplesMs.length, elapsedMs: elapsed, fraction: timedFraction(plan, samplesMs.length, elapsed) });
    }
  }
  return { samplesMs, firstRunMs: firstRunMs!, warmupRuns: warm, timedWallMs: elapsed };
}

async function handle(req: RunnerRequest): Promise<unknown> {
  if (req.kind === 'load') return load(req.modelPath, req.session);
  if (req.kind === 'rss') return { maxRssKB: process.resourceUsage().maxRSS } satisfies RssReply;
  if (!session) throw new Error('no model is loaded in this runner');
  if (req.kind === 'run') return run(req.inputs);
  return bench(req.id, req.inputs, req.plan);
}

// Requests are served one at a time: two overlapping session.run calls would distort each other's timings.
let queue: Promise<void> = Promise.resolve();
process.on('message', (req: RunnerRequest) => {
  queue = queue.then(async () => {
    try {
      send({ id: req.id, kind: 'ok', value: await handle(req) });
    } catch (e) {
      send({ id: req.id, kind: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  });
});
// The parent is gone (crashed or closed the channel): nobody will read results, so stop.
process.on('disconnect', () => process.exit(0));
