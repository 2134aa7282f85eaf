// The child process that owns one ONNX Runtime session. ONNX Runtime blocks the thread that calls it, so it runs
// here and never on the parent's event loop. Started by ModelRunner via child_process.fork; speaks runner-protocol.
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { ciRelWidthOf, timedFraction, timedStop, warmupDone, type BenchPlan } from './bench-plan.js';
import type { PlainTensor } from './plain-tensor.js';
import type { BenchReply, LoadReply, ObserveReply, RunnerReply, RunnerRequest, RssReply, SessionSettings, StatsReply } from './runner-protocol.js';
import { TensorStats } from '../compress/calibrate/histogram.js';
import { sessionOptionsOf } from './session-options.js';

type Ort = typeof import('onnxruntime-node');

const PROGRESS_EVERY_MS = 100;

let ort: Ort | undefined;
let session: InferenceSession | undefined;
/** first-run time per input-shape key: a new shape makes ORT allocate and pick kernels again */
const firstRuns = new Map<string, number>();

function send(msg: RunnerReply): void {
  process.send?.(msg);
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function load(modelPath: string, s: SessionSettings): Promise<LoadReply> {
  // Imported here rather than at the top so a broken native binding becomes an error reply, not a silent crash.
  ort ??= await import('onnxruntime-node');
  ort.env.logLevel = 'error';
  const baseRssKB = process.resourceUsage().maxRSS;
  const t0 = process.hrtime.bigint();
  session = await ort.InferenceSession.create(modelPath, sessionOptionsOf(s));
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { loadMs, inputNames: [...session.inputNames], outputNames: [...session.outputNames], baseRssKB };
}

function feedsOf(inputs: Record<string, PlainTensor>): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort!.Tensor(t.dtype, t.data, t.dims);
  return feeds;
}

function shapeKey(inputs: Record<string, PlainTensor>): string {
  return Object.entries(inputs).map(([n, t]) => `${n}:${t.dims.join('x')}`).sort().join(';');
}

/** One inference, timed around session.run only; the first one at each shape is also kept. */
async function timedRun(feeds: Record<string, Tensor>, key: string): Promise<{ ms: number; outputs: InferenceSession.ReturnType }> {
  const t0 = process.hrtime.bigint();
  const outputs = await session!.run(feeds);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!firstRuns.has(key)) firstRuns.set(key, ms);
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
  const { outputs } = await timedRun(feedsOf(inputs), shapeKey(inputs));
  const out: Record<string, PlainTensor> = {};
  for (const [name, t] of Object.entries(outputs)) out[name] = plainOf(name, t as Tensor);
  return out;
}

const observed = new Map<string, TensorStats>();

async function observe(inputs: Record<string, PlainTensor>, names: string[], histogram: boolean): Promise<ObserveReply> {
  const { outputs } = await timedRun(feedsOf(inputs), shapeKey(inputs));
  const dtypes: ObserveReply['dtypes'] = {};
  for (const name of names) {
    const out = outputs[name] as Tensor | undefined;
    const dtype = (out?.type ?? inputs[name]?.dtype) as PlainTensor['dtype'] | undefined;
    if (!dtype) continue;
    dtypes[name] = dtype;
    if (dtype !== 'float32') continue;
    let s = observed.get(name);
    if (!s) observed.set(name, (s = new TensorStats(histogram)));
    s.add((out?.data ?? inputs[name].data) as Float32Array);
  }
  return { dtypes };
}

function takeStats(): StatsReply {
  const out: StatsReply = {};
  for (const [name, s] of observed) out[name] = s.snapshot();
  observed.clear();
  return out;
}

async function bench(id: number, inputs: Record<string, PlainTensor>, plan: BenchPlan): Promise<BenchReply> {
  const feeds = feedsOf(inputs);
  const key = shapeKey(inputs);
  let warm = 0;
  const warmStart = nowMs();
  // The first inference at a shape pays for allocation and kernel selection: report it, never sample it.
  if (!firstRuns.has(key)) { await timedRun(feeds, key); warm = 1; }
  let lastReport = 0;
  while (!warmupDone(plan, warm, nowMs() - warmStart)) {
    await timedRun(feeds, key);
    warm++;
    const t = nowMs();
    if (t - lastReport >= PROGRESS_EVERY_MS) {
      lastReport = t;
      send({ id, kind: 'progress', phase: 'warm-up', runs: warm, elapsedMs: t - warmStart, fraction: 0 });
    }
  }
  const warmupMs = nowMs() - warmStart;
  const samplesMs: number[] = [];
  const start = nowMs();
  let elapsed = 0;
  let ciRel = Infinity;
  let checkedAt = 0;
  let stop: BenchReply['stopReason'] | undefined;
  for (;;) {
    samplesMs.push((await timedRun(feeds, key)).ms);
    const t = nowMs();
    elapsed = t - start;
    // Sorting for the CI costs O(n log n), so it is redone only after the sample grew by a sixteenth; this work is
    // outside the timed region either way.
    const n = samplesMs.length;
    if (Number.isFinite(plan.ciRelWidth) && n >= 6 && n - checkedAt >= Math.max(1, n >> 4)) {
      checkedAt = n;
      ciRel = ciRelWidthOf(Float64Array.from(samplesMs).sort());
    }
    stop = timedStop(plan, n, elapsed, ciRel);
    if (stop) break;
    if (t - lastReport >= PROGRESS_EVERY_MS) {
      lastReport = t;
      send({ id, kind: 'progress', phase: 'timed', runs: n, elapsedMs: elapsed, fraction: timedFraction(plan, n, elapsed, ciRel) });
    }
  }
  const finalCi = ciRelWidthOf(Float64Array.from(samplesMs).sort());
  return { samplesMs, firstRunMs: firstRuns.get(key)!, warmupRuns: warm, warmupMs, timedWallMs: elapsed, stopReason: stop!, ciRelWidth: finalCi };
}

async function handle(req: RunnerRequest): Promise<unknown> {
  if (req.kind === 'load') return load(req.modelPath, req.session);
  if (req.kind === 'rss') return { maxRssKB: process.resourceUsage().maxRSS } satisfies RssReply;
  if (!session) throw new Error('no model is loaded in this runner');
  if (req.kind === 'run') return run(req.inputs);
  if (req.kind === 'observe') return observe(req.inputs, req.names, req.histogram);
  if (req.kind === 'stats') return takeStats();
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
