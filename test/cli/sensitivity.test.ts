// edgetune sensitivity (quantization) through the CLI: it must rank what `compress` with the same mode would do.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { sensitivityOptionsFromArgs, type SensitivityArgs } from '../../src/cli/commands/sensitivity.js';
import type { QuantSensitivity } from '../../src/compress/sensitivity/quant.js';
import { randomFloats } from '../helpers/ort.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 150_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** x[1,8,8,8] → Conv → Relu → Conv → Sigmoid → y: two convs the static planner quantizes (neither is a graph output). */
function twoConvs() {
  const b = new GraphBuilder('two');
  const x = b.input('x', DT.FLOAT, [1, 8, 8, 8]);
  const h = b.op('Relu', [b.op('Conv', [x, b.initializer('w1', DT.FLOAT, [8, 8, 3, 3], randomFloats(576, 1, 0.2))], { pads: [1, 1, 1, 1] }, 'conv1')]);
  const c2 = b.op('Conv', [h, b.initializer('w2', DT.FLOAT, [8, 8, 3, 3], randomFloats(576, 2, 0.2))], { pads: [1, 1, 1, 1] }, 'conv2');
  b.node('Sigmoid', [c2], { outputs: ['y'] });
  b.output('y', DT.FLOAT, [1, 8, 8, 8]);
  return buildModel(b.graph);
}

t.test('--per-channel unset keeps the mode default; given, it is passed on', async (t) => {
  const base: SensitivityArgs = { model: 'm.onnx', mode: 'static', json: true };
  t.notOk('perChannel' in sensitivityOptionsFromArgs(base).quantize, 'no flag: the recipe default decides');
  t.equal(sensitivityOptionsFromArgs({ ...base, perChannel: false }).quantize.perChannel, false);
  t.equal(sensitivityOptionsFromArgs({ ...base, perChannel: true }).quantize.perChannel, true);
});

t.test('edgetune sensitivity --mode static ranks per-channel layers, as compress would quantize them', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'two.onnx');
  await saveModel(twoConvs(), path);
  const r = await cli(['sensitivity', path, '--mode', 'static', '--json']);
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as QuantSensitivity;
  t.same(rep.layers.map((l) => l.node).sort(), ['conv1', 'conv2']);
  for (const l of rep.layers) t.match(l.what, /per-channel/, `${l.node}: ${l.what}`);
  const off = await cli(['sensitivity', path, '--mode', 'static', '--no-per-channel', '--json']);
  t.equal(off.code, 0, off.stderr);
  for (const l of (JSON.parse(off.stdout) as QuantSensitivity).layers) t.match(l.what, /per-tensor/, `--no-per-channel: ${l.node}: ${l.what}`);
});
