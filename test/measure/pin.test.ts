import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { allowedCpus, parseCpuList, pinCpus, pinProcess } from '../../src/measure/pin.js';
import { benchModel } from '../../src/measure/bench.js';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';

async function dense(dir: string): Promise<string> {
  const g = new GraphBuilder('dense');
  g.input('x', DT.FLOAT, [1, 16]);
  g.initializer('W', DT.FLOAT, [16, 16], Float32Array.from({ length: 256 }, (_, i) => ((i * 37) % 11) / 10 - 0.5));
  g.node('MatMul', ['x', 'W'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [1, 16]);
  const path = join(dir, 'dense.onnx');
  await saveModel(buildModel(g.graph), path);
  return path;
}

const QUICK = { warmupRuns: 1, warmupMs: 0, minRuns: 5, minMs: 0, maxRuns: 5, ciRelWidth: Infinity };
const hasTaskset = spawnSync('taskset', ['-V']).status === 0;
const cpus = allowedCpus();

t.test('CPU lists parse as Linux writes them', async (t) => {
  t.same(parseCpuList('0-3,6,8-9\n'), [0, 1, 2, 3, 6, 8, 9]);
  t.same(parseCpuList('5'), [5]);
  t.equal(parseCpuList('3-1'), undefined, 'a backwards range is not a list');
  t.equal(parseCpuList('zero'), undefined);
  t.same(allowedCpus('Name:\tnode\nCpus_allowed:\tf\nCpus_allowed_list:\t0-1,4\n'), [0, 1, 4]);
  t.equal(allowedCpus('Name:\tnode\n'), undefined, 'no line, no list');
});

t.test('a child gets the last CPUs and never all of them', async (t) => {
  t.same(pinCpus(1, [0, 1, 2, 3]), [3], 'away from CPU 0');
  t.same(pinCpus(2, [0, 2, 4, 6]), [4, 6], 'the allowed set, not 0..n-1');
  t.equal(pinCpus(4, [0, 1, 2, 3]), undefined, 'every CPU: nothing to gain');
  t.equal(pinCpus(undefined, [0, 1]), undefined, 'ORT picks its own thread count: left alone');
});

t.test('pinProcess really changes the affinity of a running process', { skip: !hasTaskset ? 'no taskset on this machine' : !cpus || cpus.length < 2 ? 'needs 2 CPUs' : false }, async (t) => {
  const child = spawn('sleep', ['30']);
  t.teardown(() => { child.kill(); });
  const target = [cpus!.at(-1)!];
  const note = await pinProcess(child.pid!, target);
  t.equal(note, `runner pinned to CPU ${target[0]}`);
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  t.same(allowedCpus(status), target, 'the kernel reports the new affinity');
  t.equal(await pinProcess(child.pid!, undefined), undefined, 'no CPUs: nothing done');
});

t.test('a one-thread benchmark says it ran pinned; EDGETUNE_PIN=0 turns it off', { skip: !hasTaskset ? 'no taskset on this machine' : !cpus || cpus.length < 2 ? 'needs 2 CPUs' : false }, async (t) => {
  const path = await dense(t.testdir());
  const r = await benchModel(path, { ...QUICK, session: { intraOpThreads: 1 } });
  t.ok(r.notes.includes(`runner pinned to CPU ${cpus!.at(-1)}`), r.notes.join('; '));
  const all = await benchModel(path, { ...QUICK, session: { intraOpThreads: cpus!.length } });
  t.notOk(all.notes.some((n) => n.includes('pinned')), 'every CPU: not pinned');
  process.env.EDGETUNE_PIN = '0';
  t.teardown(() => { delete process.env.EDGETUNE_PIN; });
  const off = await benchModel(path, { ...QUICK, session: { intraOpThreads: 1 } });
  t.notOk(off.notes.some((n) => n.includes('pinned')));
});
