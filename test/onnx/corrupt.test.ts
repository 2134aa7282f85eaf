// Broken files give a ModelError naming the file and what is wrong: never another exception, never a hang.
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { modelBytes } from '../../src/onnx/model.js';
import { PADDLE_DIR, SILERO, WAKEWORD_DIR, noise } from './helpers.js';

interface Outcome { file: string; loaded: boolean; tensorErrors?: number; name?: string; code?: string; modelError?: boolean; message?: string }

const RUNNER = resolve(import.meta.dirname, 'corrupt-runner.ts');
const LIMIT_MS = 60_000;

/** Loads every file in a child process that is killed after LIMIT_MS: a hang fails the test instead of stalling it. */
function loadAll(files: string[]): Promise<Map<string, Outcome>> {
  return new Promise((done, fail) => {
    execFile(process.execPath, ['--import', 'tsx', RUNNER, ...files], { timeout: LIMIT_MS, maxBuffer: 16 << 20, cwd: resolve(import.meta.dirname, '../..') }, (err, stdout, stderr) => {
      if (err) return fail(new Error(`loader child failed${err.killed ? ` (killed after ${LIMIT_MS} ms: a hang)` : ''}: ${err.message}\n${stderr}`));
      done(new Map(stdout.trim().split('\n').map((l) => JSON.parse(l) as Outcome).map((o) => [o.file, o])));
    });
  });
}

/** Offset of the last byte of ModelProto.graph's length varint (a top-level scan of the protobuf wire format). */
function graphLengthEnd(b: Uint8Array): number {
  let p = 0;
  const varint = () => { let v = 0, m = 1; for (;;) { const c = b[p++]; v += (c & 0x7f) * m; m *= 128; if (c < 0x80) return v; } };
  while (p < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const len = varint();
      if (tag >>> 3 === 7) return p - 1;
      p += len;
    } else throw new Error(`unexpected wire type ${wire} at ${p}`);
  }
  throw new Error('no graph field found');
}

const bytes = (n: number, seed: number) => Uint8Array.from(noise(n, seed), (v) => Math.floor((v + 1) * 128));

t.test('broken files are refused with a ModelError naming the file', async (t) => {
  const dir = t.testdir();
  const cases: Array<{ file: string; what: string; expect: RegExp }> = [];
  const add = (name: string, data: Uint8Array | undefined, what: string, expect: RegExp) => {
    const file = join(dir, name);
    if (data) writeFileSync(file, data);
    cases.push({ file, what, expect });
  };

  add('empty.onnx', new Uint8Array(0), 'an empty file', /the file is empty/);
  for (let s = 1; s <= 5; s++) add(`random${s}.onnx`, bytes(4096 * s, s), `random bytes #${s}`, /not a readable ONNX model|not a valid ONNX model/);
  add('text.onnx', readFileSync(join(PADDLE_DIR, 'ppocr_keys_v1.txt')), 'a text file', /not a readable ONNX model|not a valid ONNX model/);
  add('wake.tflite', readFileSync(join(WAKEWORD_DIR, 'hey_jarvis_v0.1.tflite')), 'a TFLite model', /not a readable ONNX model|not a valid ONNX model/);

  const real = readFileSync(SILERO);
  const offsets = [1, 2, 5, 10, 50, 100, 1000, ...Array.from({ length: 12 }, (_, i) => Math.floor(((i + 1) * real.length) / 13)), real.length - 1];
  for (const off of offsets) add(`trunc_${off}.onnx`, real.subarray(0, off), `silero truncated at ${off} of ${real.length} bytes`, /truncated|not a readable ONNX model|not a valid ONNX model/);

  const flipped = Uint8Array.from(real);
  flipped[graphLengthEnd(real)] ^= 0x40; // the graph's length now runs far past the end of the file
  add('flipped_len.onnx', flipped, 'a bit flipped in the graph\'s length prefix', /not a readable ONNX model \(premature EOF\)/);

  const g = new GraphBuilder('ghostly');
  g.input('x', DT.FLOAT, [1]);
  g.node('Relu', ['ghost'], { outputs: ['y'], name: 'reads_ghost' });
  g.output('y', DT.FLOAT, [1]);
  add('undefined_input.onnx', modelBytes(buildModel(g.graph)), 'a node reading an undefined value', /node "reads_ghost" \(Relu\) reads "ghost", which nothing defines/);
  const noOut = new GraphBuilder('no_out');
  noOut.input('x', DT.FLOAT, [1]);
  noOut.output('never', DT.FLOAT, [1]);
  add('missing_output.onnx', modelBytes(buildModel(noOut.graph)), 'a graph output nothing produces', /output "never" is never produced/);

  add('missing.onnx', undefined, 'a missing file', /no such file/);
  mkdirSync(join(dir, 'folder.onnx'));
  add('folder.onnx', undefined, 'a directory', /not a file/);

  const outcomes = await loadAll(cases.map((c) => c.file));
  for (const c of cases) {
    const o = outcomes.get(c.file);
    const ok = o && !o.loaded && o.modelError && o.name === 'ModelError' && o.message!.includes(basename(c.file)) && c.expect.test(o.message!);
    t.ok(ok, `${c.what}: ${o ? (o.loaded ? 'loaded without error' : `${o.name} ${o.code}: ${o.message?.slice(0, 200)}`) : 'no result'}`);
  }
});

t.test('random bit flips in a real model never escape as anything but ModelError', async (t) => {
  const dir = t.testdir();
  const sources = [SILERO, join(PADDLE_DIR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx')];
  const files: string[] = [];
  for (const [k, src] of sources.entries()) {
    const real = readFileSync(src);
    // half anywhere (mostly weight bytes), half in the first 4 KB (mostly structure: tags, lengths, names, dims)
    const picks = noise(30, 100 + k);
    for (let i = 0; i < picks.length; i++) {
      const span = i % 2 ? Math.min(4096, real.length) : real.length;
      const pos = Math.floor(((picks[i] + 1) / 2) * span);
      const copy = Uint8Array.from(real);
      copy[pos] ^= 1 << (i % 8);
      const file = join(dir, `${basename(src, '.onnx')}_flip${i}_${pos}.onnx`);
      writeFileSync(file, copy);
      files.push(file);
    }
  }
  copyFileSync(SILERO, join(dir, 'intact.onnx'));
  files.push(join(dir, 'intact.onnx'));
  const outcomes = await loadAll(files);
  t.equal(outcomes.size, files.length, 'every file gave a result');
  t.same(outcomes.get(join(dir, 'intact.onnx')), { file: join(dir, 'intact.onnx'), loaded: true, tensorErrors: 0 }, 'the intact copy loads cleanly');
  let rejected = 0;
  for (const f of files) {
    const o = outcomes.get(f)!;
    if (!o.loaded) rejected++;
    t.ok(o.loaded || (o.modelError && o.message!.includes(basename(f))), `${basename(f)}: ${o.loaded ? `loaded (${o.tensorErrors} unreadable tensors)` : `${o.name}: ${o.message?.slice(0, 160)}`}`);
  }
  t.comment(`${rejected} of ${files.length} flipped files were refused; the rest still parse (the bit landed in a weight, a name or another value)`);
});
