import t from 'tap';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const example = 'examples/fashion-mnist/model.onnx';
const data = 'examples/fashion-mnist';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('edgetune compress --recipe static.json --data: calibrated and verified on the dataset', async (t) => {
  const dir = t.testdir();
  const recipe = join(dir, 'static.json');
  await writeFile(recipe, JSON.stringify({ v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 64 } } }));
  const r = await cli(['compress', example, '--recipe', recipe, '--data', data, '-o', join(dir, 'q.onnx'), '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.match(report.verifiedOn.source, /fashion-mnist$/);
  t.equal(report.verifiedOn.examples, 64);
  t.notMatch(report.warnings.join('\n'), /random inputs/);
  t.ok(report.fidelity.logits.cosine > 0.99, `cosine ${report.fidelity.logits.cosine}`);
  const bad = await cli(['compress', example, '--recipe', recipe, '--data', join(dir, 'missing'), '-o', join(dir, 'x.onnx')]);
  t.not(bad.code, 0);
  t.match(bad.stderr, /missing: no such file or folder/);
  t.same((await readdir(dir)).sort(), ['q.onnx', 'static.json'], 'the failed run wrote nothing');
});

t.test('edgetune compress --quant int8-static --calibration entropy --data, and --quant int4 --block-size', async (t) => {
  const dir = t.testdir();
  const s = await cli(['compress', example, '--quant', 'int8-static', '--calibration', 'entropy', '--samples', '64', '--data', data, '-o', join(dir, 's.onnx')]);
  t.equal(s.code, 0, s.stderr);
  t.match(s.stderr + s.stdout, /quantize-static: \d+ changed/);
  t.match(s.stderr + s.stdout, /calibrated \d+ activation\(s\) with entropy on 64 example\(s\)/);
  t.match(s.stderr + s.stdout, /fidelity vs the original on 64 example\(s\) from .*fashion-mnist/);
  const w = await cli(['compress', example, '--quant', 'int4', '--block-size', '64', '-o', join(dir, 'w.onnx'), '--json']);
  t.equal(w.code, 0, w.stderr);
  const r = JSON.parse(w.stdout);
  t.equal(r.recipe.quantize.bits, 4);
  t.match(r.passes[0].changed[0].what, /4-bit symmetric block 64/);
  const mixed = await cli(['compress', example, '--recipe', join(dir, 'any.json'), '--calibration', 'minmax', '-o', join(dir, 'x.onnx')]);
  t.not(mixed.code, 0);
  t.match(mixed.stderr, /go with --quant; with --recipe set them in the recipe file/);
  const wrong = await cli(['compress', example, '--quant', 'fp16', '--block-size', '32', '-o', join(dir, 'x.onnx')]);
  t.match(wrong.stderr, /--block-size applies to --quant int4 or int8-weight only/);
});
