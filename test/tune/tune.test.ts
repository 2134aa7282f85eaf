import t from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel, loadModel, sha256 } from '../../src/onnx/model.js';
import { tune } from '../../src/tune/tune.js';
import { latencyAt } from '../../src/tune/decide.js';
import { formatTuneTable } from '../../src/tune/format.js';
import { packageRoot } from '../../src/util/paths.js';
import { randomFloats } from '../helpers/ort.js';
import type { TuneResult } from '../../src/types.js';

const quickBench = { warmupRuns: 2, warmupMs: 20, minRuns: 10, minMs: 50, maxRuns: 60, maxMs: 400 };

async function mlpFile(dir: string): Promise<string> {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, [1, 256]);
  const h = b.op('Relu', [b.op('MatMul', [x, b.initializer('w1', DT.FLOAT, [256, 256], randomFloats(65536, 1, 0.1))])]);
  b.output(b.node('MatMul', [h, b.initializer('w2', DT.FLOAT, [256, 10], randomFloats(2560, 2, 0.1))], { outputs: ['y'] })[0], DT.FLOAT, [1, 10]);
  const p = join(dir, 'mlp.onnx');
  await saveModel(buildModel(b.graph), p);
  return p;
}

t.test('exhaustive: every candidate measured; fp32 wins a generous budget; model, JSON and report written', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const progress: number[] = [];
  const r = await tune({ model, budgetMs: 1000, threads: [1], quant: ['dynamic', 'fp16'], strategy: 'exhaustive', bench: quickBench, output: join(dir, 'out.onnx') }, { onProgress: (p) => progress.push(p.pct) });
  t.same(r.trials.map((m) => m.label).sort(), ['fp16 t1', 'fp32 t1', 'int8-dynamic t1']);
  t.equal(r.chosen?.label, 'fp32 t1', 'the exact model wins when everything fits');
  t.equal(r.quality.metric, 'fidelity');
  t.equal(r.budget.minFidelity, 0.99, 'without labels the fidelity floor applies');
  t.ok(latencyAt(r.chosen!, 90) <= 1000);
  t.equal(r.search.confirmations.length, 1);
  t.ok(r.chosen!.latencyMs.n >= r.trials[0].latencyMs.n, 'the confirmation is the longer benchmark');
  const written = await readFile(join(dir, 'out.onnx'));
  t.equal(sha256(written), r.chosen!.model.sha256, 'the chosen file is what was written');
  const text = await readFile(join(dir, 'out.tune.json'), 'utf8');
  const json = JSON.parse(text) as TuneResult;
  t.equal(json.v, 1);
  t.equal(r.baseline.quality.sqnrDb, Infinity, 'fp32 against itself is exact');
  t.equal(json.baseline.quality.sqnrDb as unknown, 'Infinity', 'the file says "Infinity", not null (missing)');
  t.notMatch(text, /"sqnrDb": null/);
  t.equal(json.trials.length, 3);
  t.ok(json.front.length >= 1);
  const html = await readFile(join(dir, 'out.tune.html'), 'utf8');
  t.match(html, /<svg/);
  t.ok(progress.at(-1) === 100 && progress.length >= 5, 'progress reported');
  const int8 = r.trials.find((m) => m.label.startsWith('int8'))!;
  t.ok(int8.model.bytes < r.baseline.model.bytes / 3, 'int8 file is smaller');
  t.ok(int8.quality.cosine! > 0.99, `int8 cosine ${int8.quality.cosine}`);
  t.ok(r.models.every((x) => x.status === 'ok' && x.macs === 256 * 256 + 256 * 10), 'MACs counted for every model');
  await t.rejects(stat(join(dir, 'out.tune-work')), 'the work folder is removed after a finished tune');
  t.match(formatTuneTable(r), /chosen: fp32 t1/);
});

t.test('a depthwise model gets the depthwise axis by itself: both static forms compressed, measured and compared', async (t) => {
  const dir = t.testdir();
  const b = new GraphBuilder('dw');
  const x = b.input('x', DT.FLOAT, [1, 16, 16, 16]);
  const conv = (inp: string, name: string, cout: number, cin: number, k: number, group = 1, seed = 1) =>
    b.op('Relu', [b.op('Conv', [inp, b.initializer(`${name}_w`, DT.FLOAT, [cout, cin, k, k], randomFloats(cout * cin * k * k, seed, 0.2))],
      { pads: [k >> 1, k >> 1, k >> 1, k >> 1], group }, name)]);
  const pw1 = conv(x, 'pw1', 32, 16, 1, 1, 1);
  const dw = conv(pw1, 'dw', 32, 1, 3, 32, 2);
  const pw2 = conv(dw, 'pw2', 32, 32, 1, 1, 3);
  b.output(b.node('GlobalAveragePool', [pw2], { outputs: ['y'] })[0], DT.FLOAT);
  const model = join(dir, 'dw.onnx');
  await saveModel(buildModel(b.graph), model);
  // No space file: the tuner sees the depthwise conv and adds the fp32-depthwise form of static int8.
  const r = await tune({ model, budgetMs: 1000, threads: [1], quant: ['static'], strategy: 'exhaustive', bench: quickBench, output: join(dir, 'out.onnx') });
  t.match(r.notes.join('\n'), /the model has 1 depthwise conv\(s\): static int8 is also tried with them kept fp32/);
  t.match(formatTuneTable(r), /note: the model has 1 depthwise conv/, 'the CLI prints the notes');
  const labels = r.trials.map((m) => m.label).sort();
  t.same(labels, ['fp32 t1', 'int8-static t1', 'int8-static-dwfp32 t1'], labels.join(', '));
  const kept = r.trials.find((m) => m.label.includes('dwfp32'))!;
  const full = r.trials.find((m) => m.label === 'int8-static t1')!;
  t.equal(kept.recipe.quantize?.depthwise, false);
  t.not(kept.model.sha256, full.model.sha256, 'two different files');
  t.ok(kept.model.bytes > full.model.bytes, 'the fp32 depthwise weights make the file larger');
  t.ok(kept.quality.cosine! > 0.99 && full.quality.cosine! > 0.99, `cosine ${kept.quality.cosine} / ${full.quality.cosine}`);
});

t.test('a model with dynamic dims and no data: --shape reaches calibration, so static int8 is built and measured', async (t) => {
  const dir = t.testdir();
  const b = new GraphBuilder('dyn');
  const x = b.input('x', DT.FLOAT, [1, 16, 'H', 'W']);
  const conv = b.op('Relu', [b.op('Conv', [x, b.initializer('w', DT.FLOAT, [32, 16, 3, 3], randomFloats(32 * 16 * 9, 5, 0.2))], { pads: [1, 1, 1, 1] }, 'conv')]);
  b.output(b.node('GlobalAveragePool', [conv], { outputs: ['y'] })[0], DT.FLOAT);
  const model = join(dir, 'dyn.onnx');
  await saveModel(buildModel(b.graph), model);
  const r = await tune({ model, budgetMs: 1000, threads: [1], quant: ['static'], shapes: { x: [1, 16, 12, 12] }, strategy: 'exhaustive', bench: quickBench, output: join(dir, 'out.onnx') });
  const st = r.models.find((m) => m.key.startsWith('static'));
  t.equal(st?.status, 'ok', `static int8 built (${st?.reason ?? ''})`);
  t.ok(r.trials.some((m) => m.label === 'int8-static t1'), r.trials.map((m) => m.label).join(', '));
  // A model that could not be built has no row in the table: the text says so instead.
  t.notMatch(formatTuneTable(r), /not built/);
  const broken = { ...r, models: [...r.models, { key: 'static|p0.5|lr-|fb0', status: 'skipped' as const, reason: 'ONNX Runtime could not run it: boom' }] };
  t.match(formatTuneTable(broken), /not built: 1 model\(s\): ONNX Runtime could not run it: boom/);
});

t.test('an unwritable report path fails before any candidate is built or measured', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  await writeFile(join(dir, 'plain'), 'x');
  const progress: number[] = [];
  await t.rejects(tune({ model, budgetMs: 1000, threads: [1], quant: ['dynamic'], bench: quickBench, output: join(dir, 'out.onnx'), reportPath: join(dir, 'plain/r.html') }, { onProgress: (p) => progress.push(p.pct) }),
    { code: 'USAGE', message: /^report .*plain\/r\.html: part of .* is a file/ });
  t.same(progress, [], 'no progress: nothing ran');
  await t.rejects(stat(join(dir, 'out.tune-journal.jsonl')), { code: 'ENOENT' }, 'no journal started');
});

t.test('adaptive: stops as soon as nothing left can beat the incumbent', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const r = await tune({ model, budgetMs: 1000, threads: [1], quant: ['dynamic', 'fp16'], bench: quickBench, output: join(dir, 'out.onnx'), reportPath: false });
  t.equal(r.trials.length, 1, 'fp32 is exact and fits: nothing can beat it');
  t.match(r.search.stopReason, /can beat fp32 t1/);
  t.equal(r.chosen?.label, 'fp32 t1');
});

t.test('an impossible budget says so plainly, with the closest candidate', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const r = await tune({ model, budgetMs: 0.000001, threads: [1], quant: ['fp32', 'dynamic'], bench: quickBench, output: join(dir, 'x.onnx') });
  t.equal(r.chosen, null);
  t.match(r.infeasible?.reason, /no candidate meets the budget; the closest, .*: p90 latency/);
  await t.rejects(stat(join(dir, 'x.onnx')), 'no model written');
  t.ok(await stat(join(dir, 'x.tune.json')), 'the result is still written');
  t.match(formatTuneTable(r), /NOT MET/);
});

t.test('an interrupted tune resumes from its journal without measuring finished trials again', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const opts = { model, budgetMs: 1000, threads: [1, 2], quant: ['dynamic', 'fp16'] as Array<'dynamic' | 'fp16'>, strategy: 'exhaustive' as const, bench: quickBench, output: join(dir, 'o.onnx'), reportPath: false as const };
  const ac = new AbortController();
  await t.rejects(tune(opts, { signal: ac.signal, onProgress: (p) => { if (/^2 measured/.test(p.detail ?? '')) ac.abort(); } }), { code: 'CANCELED' });
  const lines = (await readFile(join(dir, 'o.tune-journal.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const done = lines.filter((l) => l.kind === 'trial').map((l) => l.id);
  t.equal(done.length, 2, 'two trials were journaled before the interruption');
  const r = await tune(opts);
  t.equal(r.journal.resumed, true);
  t.equal(r.search.replayed, 2, 'the finished trials were replayed');
  t.equal(r.search.measured, r.trials.length - 2, 'only the rest was measured');
  t.equal(r.trials.length, 6);
  const after = (await readFile(join(dir, 'o.tune-journal.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const ids = after.filter((l) => l.kind === 'trial').map((l) => l.id);
  t.equal(new Set(ids).size, ids.length, 'no trial was measured twice');
  // A different space is another tune: the journal is set aside.
  const other = await tune({ ...opts, threads: [1], strategy: 'adaptive' });
  t.equal(other.journal.resumed, false);
  t.match(other.journal.notes.join(' '), /search space changed/);
  await loadModel(model); // input untouched
});

t.test('a resumed tune builds again a model its journal recorded as skipped (the cause may be fixed since)', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const opts = { model, budgetMs: 1000, threads: [1], quant: ['dynamic'] as Array<'dynamic'>, strategy: 'exhaustive' as const, bench: quickBench, output: join(dir, 'o.onnx'), reportPath: false as const };
  const first = await tune(opts);
  t.same(first.trials.map((m) => m.label).sort(), ['fp32 t1', 'int8-dynamic t1']);
  // Rewrite the journal as an older edgetune with a bug would have left it: the dynamic model skipped, never measured.
  const path = join(dir, 'o.tune-journal.jsonl');
  const lines = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const dyn = lines.find((l) => l.kind === 'model' && l.record.key.startsWith('dynamic'));
  dyn.record = { key: dyn.record.key, status: 'skipped', reason: 'an old bug' };
  const kept = lines.filter((l) => !((l.kind === 'trial' || l.kind === 'confirm') && !/^fp32/.test(l.m?.label ?? '')));
  await writeFile(path, kept.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const again = await tune(opts);
  t.equal(again.journal.resumed, true);
  t.equal(again.models.find((m) => m.key === dyn.record.key)?.status, 'ok', 'the skipped model was built again');
  t.ok(again.trials.some((m) => m.label === 'int8-dynamic t1'), 'and measured');
});

t.test('the example: accuracy on its labelled held-out set, and the accuracy floor', async (t) => {
  const dir = t.testdir();
  const model = join(packageRoot(), 'examples/fashion-mnist/model.onnx');
  const r = await tune({ model, budgetMs: 1000, threads: [1], quant: ['dynamic'], evalSamples: 300, bench: quickBench, output: join(dir, 'f.onnx'), reportPath: false });
  t.equal(r.quality.metric, 'accuracy');
  t.equal(r.quality.examples, 300);
  t.ok(r.quality.baselineAccuracy! > 0.85, `fp32 accuracy ${r.quality.baselineAccuracy}`);
  t.equal(r.budget.maxAccuracyDrop, 1);
  t.ok(r.chosen, 'something fits 1 s');
  t.ok(r.chosen!.quality.accuracy! >= r.quality.baselineAccuracy! - 0.01);
  const dyn = r.models.find((m) => m.key.startsWith('dynamic'))!;
  t.equal(dyn.status, 'ok');
  t.ok(dyn.quality!.accuracy! > 0.85);
  t.notOk(r.notes.some((n) => /one example is/.test(n)), '300 examples resolve a 1-point floor: no warning');
});

t.test('too few labelled examples for the accuracy floor: the result says so', async (t) => {
  const dir = t.testdir();
  const model = join(packageRoot(), 'examples/fashion-mnist/model.onnx');
  const base = { model, budgetMs: 1000, threads: [1], quant: ['dynamic' as const], evalSamples: 40, bench: quickBench, reportPath: false as const };
  const r = await tune({ ...base, output: join(dir, 'a.onnx') });
  t.equal(r.quality.examples, 40);
  t.ok(r.notes.some((n) => n.includes('only 40 example(s), so one example is 2.5 points, more than the 1-point drop allowed') && n.includes('at least 100 labelled examples')), r.notes.join('\n'));
  const loose = await tune({ ...base, maxAccuracyDrop: 5, output: join(dir, 'b.onnx') });
  t.notOk(loose.notes.some((n) => /one example is/.test(n)), 'a 5-point floor is resolved by 40 examples');
});

t.test('tune can be canceled', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const ac = new AbortController();
  const p = tune({ model, budgetMs: 10, threads: [1], bench: { ...quickBench, minMs: 2000, maxMs: 3000 }, output: join(dir, 'c.onnx') }, { signal: ac.signal, onProgress: (e) => { if (e.pct > 0) ac.abort(); } });
  await t.rejects(p, { code: 'CANCELED' });
  await loadModel(model);
});
