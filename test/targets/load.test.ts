import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgetuneError } from '../../src/errors.js';
import { defaultTargetDirs, loadTargets, parseTarget } from '../../src/targets/load.js';
import type { Target } from '../../src/types.js';
import { packageRoot } from '../../src/util/paths.js';

const builtinDir = join(packageRoot(), 'targets');
const builtin = (name: string) => JSON.parse(readFileSync(join(builtinDir, `${name}.json`), 'utf8')) as Target;

t.test('the built-in targets all load, and the required ones exist', async (t) => {
  const targets = await loadTargets();
  const names = targets.map((x) => x.name);
  for (const n of ['generic-x86_64', 'generic-arm64', 'raspberry-pi-4', 'raspberry-pi-5', 'jetson-orin-nano']) t.ok(names.includes(n), n);
  for (const x of targets) {
    t.ok(x.sources.length >= 1, `${x.name} cites a source`);
    // fp16 in a space is weight storage (compute stays fp32); the notes must say so, so nobody reads it as fp16 compute.
    if (x.space.quant.includes('fp16')) t.match(x.notes, /fp16 weight \*storage\*/, `${x.name}: fp16 is storage only`);
  }
  t.same(defaultTargetDirs(), [builtinDir]);
  t.same(defaultTargetDirs('/u'), [builtinDir, '/u']);
});

t.test('the encoded facts: int8 worth it where dotprod/VNNI exist, little gain without', async (t) => {
  const targets = new Map((await loadTargets()).map((x) => [x.name, x]));
  t.equal(targets.get('raspberry-pi-4')!.priors.int8Gain, 'low');
  t.equal(targets.get('raspberry-pi-5')!.priors.int8Gain, 'high');
  t.equal(targets.get('jetson-orin-nano')!.priors.int8Gain, 'high');
  t.equal(targets.get('x86_64-vnni')!.priors.int8Gain, 'high');
  t.same(targets.get('x86_64-vnni')!.match.isaAll, ['avx2', 'vnni']);
  t.same(targets.get('arm64-dotprod')!.match.isaAll, ['neon', 'dotprod']);
  t.same(targets.get('generic-x86_64')!.fallbackFor, ['x64']);
  t.same(targets.get('generic-arm64')!.fallbackFor, ['arm64']);
  t.equal(targets.get('jetson-orin-nano')!.defaults.threads, 6);
});

t.test('a broken file names the file and each `path: message`', async (t) => {
  const dir = t.testdir({
    'raspberry-pi-4.json': JSON.stringify({ ...builtin('raspberry-pi-4'), space: { quant: ['int4'], threads: [0] }, sources: [] }),
  });
  const err = await loadTargets([dir]).catch((e: unknown) => e);
  t.type(err, EdgetuneError);
  t.equal((err as EdgetuneError).code, 'TARGET_INVALID');
  const msg = (err as Error).message;
  t.match(msg, join(dir, 'raspberry-pi-4.json'));
  t.match(msg, /\/space\/quant\/0: /);
  t.match(msg, /\/space\/threads\/0: /);
  t.match(msg, /\/sources: /);
});

t.test('bad JSON, a name that differs from the file, and contradictory ISA conditions are rejected', async (t) => {
  t.throws(() => parseTarget('{ "name": ', '/x/a.json'), /\/x\/a\.json: not valid JSON/);
  t.throws(() => parseTarget(JSON.stringify(builtin('raspberry-pi-5')), '/x/pi5.json'), /\/name: 'raspberry-pi-5' differs from the file name/);
  const bad = { ...builtin('arm64-dotprod'), match: { arch: ['arm64'], isaAll: ['dotprod'], isaNone: ['dotprod'] } };
  t.throws(() => parseTarget(JSON.stringify(bad), '/x/arm64-dotprod.json'), /dotprod in both isaAll and isaNone/);
  t.throws(() => parseTarget(JSON.stringify({ ...builtin('generic-arm64'), match: { arch: ['aarch64'] } }), '/x/generic-arm64.json'), /\/match\/arch\/0/);
  t.throws(() => parseTarget(JSON.stringify({ ...builtin('generic-arm64'), extra: 1 }), '/x/generic-arm64.json'), /generic-arm64\.json: invalid target/);
});

t.test('v defaults to 1 when a hand-written file leaves it out', async (t) => {
  const { v: _v, ...noV } = builtin('generic-arm64');
  t.equal(parseTarget(JSON.stringify(noV), '/x/generic-arm64.json').v, 1);
});

t.test('a user folder adds targets and replaces built-ins of the same name', async (t) => {
  const mine = { ...builtin('raspberry-pi-4'), notes: 'my overclocked Pi 4', defaults: { threads: 3 } };
  const extra = { ...builtin('generic-arm64'), name: 'rock-5b', fallbackFor: undefined, match: { arch: ['arm64'], boardIncludes: ['ROCK 5B'] } };
  const dir = t.testdir({ 'raspberry-pi-4.json': JSON.stringify(mine), 'rock-5b.json': JSON.stringify(extra), 'README.md': 'ignored' });
  const targets = await loadTargets(defaultTargetDirs(dir));
  const pi4 = targets.filter((x) => x.name === 'raspberry-pi-4');
  t.equal(pi4.length, 1);
  t.equal(pi4[0].notes, 'my overclocked Pi 4');
  t.equal(pi4[0].defaults.threads, 3);
  t.ok(targets.some((x) => x.name === 'rock-5b'));
});

t.test('a missing or empty folder is an error that names it', async (t) => {
  const dir = t.testdir({});
  await t.rejects(loadTargets([join(dir, 'nope')]), /targets folder .*nope does not exist/);
  await t.rejects(loadTargets([dir]), /no target files/);
  writeFileSync(join(dir, 'x.txt'), 'not a target');
  await t.rejects(loadTargets([dir]), /no target files/);
});
