import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseTrtexecLog, parseTrtexecTimes, summaryStats, versionFromTag } from '../../../src/measure/backends/trtexec-log.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/measure/trtexec/${name}`, import.meta.url), 'utf8');

t.test('TensorRT 8 summary from a Jetson Nano (fp16)', async (t) => {
  const r = parseTrtexecLog(fixture('jetson-nano-trt8-fp16.log'));
  t.equal(r.throughputQps, 9.85818);
  t.same(r.latency, { min: 100.036, max: 104.225, mean: 101.425, median: 101.092, percentiles: { 99: 104.225 } });
  t.same(r.endToEnd, { min: 100.049, max: 104.233, mean: 101.438, median: 101.105, percentiles: { 99: 104.233 } }, 'End-to-End Host Latency is its own row, not Latency');
  t.equal(r.gpuCompute?.median, 100.67);
  t.equal(r.enqueue?.mean, 58.9862);
  t.equal(r.h2d?.min, 0.307251);
  t.equal(r.d2h?.percentiles[99], 0.114624);
  t.equal(r.walltimeS, 3.24604);
  t.equal(r.passed, undefined, 'the excerpt has no banner');
});

t.test('TensorRT 8.4 on a Jetson AGX Xavier, with the PASSED banner', async (t) => {
  const r = parseTrtexecLog(fixture('jetson-xavier-agx-trt84.log'));
  t.equal(r.passed, true);
  t.equal(r.versionTag, 'v8400');
  t.equal(versionFromTag(r.versionTag!), '8.4.0');
  t.equal(r.latency?.median, 0.401947);
  t.equal(r.throughputQps, 41087.7);
  t.equal(r.endToEnd, undefined, 'no End-to-End row in this version');
});

t.test('TensorRT 7 block layout from a Jetson AGX Xavier', async (t) => {
  const r = parseTrtexecLog(fixture('jetson-agx-xavier-trt7.log'));
  t.same(r.latency, { min: 6.14319, max: 9.15771, mean: 6.84532, median: 6.60986, percentiles: { 99: 8.90259 } });
  t.same(r.endToEnd, { min: 6.15247, max: 9.69702, mean: 6.87277, median: 6.62183, percentiles: { 99: 8.97888 } });
  t.equal(r.throughputQps, 145.5);
  t.equal(r.walltimeS, 3.01718);
});

t.test('TensorRT 7 Enqueue Time and GPU Compute blocks', async (t) => {
  const r = parseTrtexecLog(fixture('rtx2080-trt7-gpu-compute.log'));
  t.same(r.enqueue, { min: 10.1111, max: 11.0121, median: 10.2297, percentiles: {} });
  t.same(r.gpuCompute, { min: 9.04541, max: 9.98022, mean: 9.19428, median: 9.17056, percentiles: { 99: 9.88184 } });
  t.equal(r.latency, undefined);
});

t.test('TensorRT 10 on a Jetson AGX Orin: p90, p95, p99', async (t) => {
  const r = parseTrtexecLog(fixture('jetson-agx-orin-trt10.log'));
  t.same(r.latency?.percentiles, { 90: 76.4209, 95: 76.446, 99: 76.4476 });
  t.equal(r.enqueue?.percentiles[95], 76.0399);
  t.equal(r.throughputQps, 12.9581);
});

t.test('a summary as a user pasted it: no prefixes, some "=" missing, lines run together', async (t) => {
  const r = parseTrtexecLog(fixture('jetson-pasted-summary.log'));
  t.same(r.latency, { min: 5.38959, max: 6.19507, mean: 5.93288, median: 6.02185, percentiles: { 99: 6.17407 } });
  t.equal(r.gpuCompute?.percentiles[99], 3.87793);
  t.equal(r.d2h?.mean, 1.47722);
  t.equal(r.gpuCvPercent, 5.55763);
});

t.test('full-log lines: version, device, queries, build and load times, warnings', async (t) => {
  const log = [
    '&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --onnx=m.onnx',
    '[07/14/2023-11:52:09] [I] Selected Device: NVIDIA Tegra X1',
    '[07/14/2023-11:52:09] [I] TensorRT version: 8.2.1',
    '[07/14/2023-11:55:14] [I] Engine built in 184.708 sec.',
    '[04/07/2025-23:59:47] [I] Engine deserialized in 0.10331 sec.',
    '[07/14/2023-11:55:18] [I] Warmup completed 2 queries over 200 ms',
    '[07/14/2023-11:55:18] [I] Timing trace has 35 queries over 3.16419 s',
    '[07/14/2023-11:55:18] [W] * Throughput may be bound by Enqueue Time rather than GPU Compute',
    '[07/14/2023-11:52:13] [W] [TRT] onnx2trt_utils.cpp:366: Your ONNX model has been generated with INT64 weights',
    '&&&& FAILED TensorRT.trtexec [TensorRT v8201] # trtexec --onnx=m.onnx',
  ].join('\n');
  const r = parseTrtexecLog(log);
  t.equal(r.versionTag, 'v8201');
  t.equal(versionFromTag('v8201'), '8.2.1');
  t.equal(versionFromTag('v100200'), '10.2.0');
  t.equal(versionFromTag('8.2'), undefined);
  t.equal(r.version, '8.2.1');
  t.equal(r.device, 'NVIDIA Tegra X1');
  t.equal(r.buildS, 184.708);
  t.equal(r.deserializeS, 0.10331);
  t.equal(r.warmupQueries, 2);
  t.equal(r.queries, 35);
  t.equal(r.walltimeS, 3.16419);
  t.equal(r.passed, false);
  t.same(r.warnings, ['* Throughput may be bound by Enqueue Time rather than GPU Compute'], 'TensorRT library chatter is not a warning about the measurement');
});

t.test('--exportTimes records', async (t) => {
  const r = parseTrtexecTimes(fixture('times-constructed.json'));
  t.equal(r.field, 'latencyMs');
  t.same(r.samplesMs, [90.338, 89.592, 91.492]);
  t.same(parseTrtexecTimes('[{"computeMs": 2}, {"computeMs": 3}]'), { samplesMs: [2, 3], field: 'computeMs' });
  t.same(parseTrtexecTimes('[{"startComputeMs": 1, "endComputeMs": 3.5}]'), { samplesMs: [2.5], field: 'compute span' });
  t.throws(() => parseTrtexecTimes('[{"latencyMs": 1}', 't.json'), /t\.json: not JSON/);
  t.throws(() => parseTrtexecTimes('[]'), /non-empty JSON array/);
  t.throws(() => parseTrtexecTimes('[{"foo": 1}]'), /none of latencyMs/);
});

t.test('summary statistics when there are no per-run times', async (t) => {
  const nano = summaryStats(parseTrtexecLog(fixture('jetson-nano-trt8-fp16.log')))!;
  t.equal(nano.row, 'Latency', 'host latency, as the per-run latencyMs, is preferred over GPU compute');
  t.match(nano.stats, { p50: 101.092, p99: 104.225, mean: 101.425 });
  t.same(nano.missing, ['p90', 'p95', 'std', 'cv', 'ci95p50', 'n']);
  const counted = summaryStats(parseTrtexecLog('[I] Timing trace has 35 queries over 3.16419 s\n[I] Latency: min = 1 ms, max = 3 ms, mean = 2 ms, median = 2 ms, percentile(90%) = 2.5 ms, percentile(95%) = 2.8 ms, percentile(99%) = 3 ms'))!;
  t.equal(counted.stats.n, 35, 'n from the timing trace when printed');
  t.same(counted.missing, ['std', 'cv', 'ci95p50']);
  t.equal(summaryStats(parseTrtexecLog(fixture('rtx2080-trt7-gpu-compute.log')))?.row, 'GPU Compute Time');
  t.equal(summaryStats(parseTrtexecLog('&&&& PASSED TensorRT.trtexec')), undefined, 'no median anywhere: nothing to report');
});
