import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { loadIdxClassification, parseIdx, readIdx } from '../../../src/measure/datasets/idx.js';
import { DatasetError } from '../../../src/errors.js';
import { packageRoot } from '../../../src/util/paths.js';
import { loadModel } from '../../../src/onnx/model.js';
import { ort } from '../../helpers/ort.js';

const dir = join(packageRoot(), 'examples', 'fashion-mnist');
const IMAGES = join(dir, 't10k-images-idx3-ubyte.gz');
const LABELS = join(dir, 't10k-labels-idx1-ubyte.gz');

const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** An unsigned-byte IDX file with the given dims and data. */
function idx(dims: number[], data: ArrayLike<number>): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(Array.from(data))]);
}

t.test('the committed Fashion-MNIST test set reads as 10,000 labelled 28x28 images', async (t) => {
  const set = await loadIdxClassification(IMAGES, LABELS);
  t.equal(set.count, 10000);
  t.same(set.inputShape, [1, 28, 28]);
  t.equal(set.images.length, 10000 * 784);
  t.equal(set.labels.length, 10000);
  t.equal(set.labels[0], 9, 'first test image is an ankle boot (label 9)');
  t.same([...set.labels.subarray(0, 10)], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 'first ten labels are the file\'s first ten bytes after the header');
  const perClass = new Array<number>(10).fill(0);
  let outOfRange = 0;
  for (const l of set.labels) l < 10 ? perClass[l]++ : outOfRange++;
  t.equal(outOfRange, 0, 'every label is in 0..9');
  t.same(perClass, new Array(10).fill(1000), 'the t10k set is balanced: 1000 images per class');
  let min = Infinity, max = -Infinity;
  for (const v of set.images) { if (v < min) min = v; if (v > max) max = v; }
  t.equal(min, 0);
  t.equal(max, 1, 'pixels scaled by 1/255 reach exactly 1');

  const raw = await readIdx(IMAGES);
  t.same(raw.dims, [10000, 28, 28]);
  t.equal(raw.data[784 * 3 + 400] / 255, set.images[784 * 3 + 400], 'images are the raw bytes times the scale');
});

t.test('limit, scale and batches', async (t) => {
  const set = await loadIdxClassification(IMAGES, LABELS, { limit: 10, scale: 1 });
  const raw = await readIdx(IMAGES);
  t.equal(set.count, 10);
  t.same([...set.images], [...raw.data.subarray(0, 7840)], 'scale 1 keeps the byte values');
  const batches = [...set.batches(4)];
  t.same(batches.map((b) => b.start), [0, 4, 8]);
  t.same(batches.map((b) => b.dims), [[4, 1, 28, 28], [4, 1, 28, 28], [2, 1, 28, 28]]);
  t.same(batches.map((b) => b.input.length), [4 * 784, 4 * 784, 2 * 784]);
  t.same([...batches[2].labels], [...set.labels.subarray(8, 10)]);
  t.same([...batches[1].input.subarray(0, 784)], [...raw.data.subarray(4 * 784, 5 * 784)], 'batch 1 starts at image 4');
  t.throws(() => set.batches(0).next(), { message: /batch size must be a positive integer/ });
  await t.rejects(loadIdxClassification(IMAGES, LABELS, { limit: -1 }), { message: /limit must be a non-negative integer/ });
  const all = await loadIdxClassification(IMAGES, LABELS, { limit: 20000 });
  t.equal(all.count, 10000, 'a limit above the set size keeps the whole set');
});

t.test('plain and gzipped files read the same; broken files are rejected naming the file', async (t) => {
  const root = t.testdir({});
  const labels = gunzipSync(await readFile(LABELS));
  const plain = join(root, 'labels-idx1-ubyte');
  await writeFile(plain, labels);
  const a = await readIdx(plain);
  const b = await readIdx(LABELS);
  t.same(a.dims, b.dims);
  t.same(Buffer.from(a.data), Buffer.from(b.data));

  const cut = join(root, 'cut-labels-idx1-ubyte');
  await writeFile(cut, labels.subarray(0, 5000));
  await t.rejects(readIdx(cut), { name: 'DatasetError', code: 'DATASET_CORRUPT', message: new RegExp(`^${re(cut)}: truncated: dims \\[10000\\] need 10000 data bytes, the file has 4992`) });

  const cutGz = join(root, 'cut-images.gz');
  const gz = await readFile(IMAGES);
  await writeFile(cutGz, gz.subarray(0, gz.length >> 1));
  await t.rejects(readIdx(cutGz), { code: 'DATASET_CORRUPT', message: new RegExp(`^${re(cutGz)}: gzip data is damaged or truncated`) });

  const notIdx = join(root, 'model.onnx');
  await writeFile(notIdx, Buffer.from('\x08\x07\x12\x04test'));
  await t.rejects(readIdx(notIdx), { code: 'DATASET_CORRUPT', message: new RegExp(`^${re(notIdx)}: bad IDX magic number 0x08071204`) });

  const header = join(root, 'short-header');
  await writeFile(header, Buffer.from([0, 0, 8, 3, 0, 0]));
  await t.rejects(readIdx(header), { message: new RegExp(`^${re(header)}: truncated IDX header`) });

  const extra = join(root, 'extra');
  await writeFile(extra, Buffer.concat([idx([3], [1, 2, 3]), Buffer.from([9])]));
  await t.rejects(readIdx(extra), { message: new RegExp(`^${re(extra)}: has trailing bytes: dims \\[3\\] need 3 data bytes, the file has 4`) });

  const floats = join(root, 'floats');
  await writeFile(floats, gzipSync(Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])));
  await t.rejects(readIdx(floats), { message: new RegExp(`^${re(floats)}: IDX element type float32 \\(0xd\\) is not supported`) });

  const missing = join(root, 'nope.gz');
  await t.rejects(readIdx(missing), { code: 'DATASET_NOT_FOUND', message: `${missing}: no such file` });

  const ac = new AbortController();
  ac.abort();
  await t.rejects(readIdx(IMAGES, { signal: ac.signal }), { name: 'CanceledError', code: 'CANCELED' });
});

t.test('an images file and a labels file must be a pair', async (t) => {
  const root = t.testdir({});
  const img = join(root, 'img');
  const lab = join(root, 'lab');
  const lab3 = join(root, 'lab3');
  await writeFile(img, idx([2, 2, 2], [0, 255, 51, 0, 1, 2, 3, 4]));
  await writeFile(lab, idx([2], [7, 3]));
  await writeFile(lab3, idx([3], [7, 3, 1]));
  const set = await loadIdxClassification(img, lab);
  t.same(set.inputShape, [1, 2, 2]);
  t.same([...set.images], [0, 255, 51, 0, 1, 2, 3, 4].map((v) => Math.fround(v * (1 / 255))));
  await t.rejects(loadIdxClassification(img, lab3), { message: new RegExp(`${re(img)} holds 2 images but ${re(lab3)} holds 3 labels`) });
  await t.rejects(loadIdxClassification(lab, img), { message: new RegExp(`^${re(lab)}: an images file must have 3 dimensions`) });
  await t.rejects(loadIdxClassification(img, img), { message: new RegExp(`^${re(img)}: a labels file must have 1 dimension`) });
  t.throws(() => parseIdx(new Uint8Array([0, 0, 8]), 'tiny'), DatasetError);
});

t.test('the example model reaches its claimed accuracy on the first 2000 held-out images', async (t) => {
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  const subset = meta.subsetAccuracy as { first: number; accuracy: number };
  t.equal(subset.first, 2000);
  const set = await loadIdxClassification(IMAGES, LABELS, { limit: subset.first, scale: meta.scale });
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), { intraOpNumThreads: 1 });
  try {
    t.same(session.inputNames, [meta.input]);
    t.same(session.outputNames, [meta.output]);
    let correct = 0;
    // 300 does not divide 2000: the last batch is partial, and every batch but the first is an offset view
    for (const batch of set.batches(300)) {
      const out = await session.run({ [meta.input]: new ort.Tensor('float32', batch.input, batch.dims) });
      const logits = out[meta.output];
      t.same(logits.dims, [batch.dims[0], meta.classes.length], `logits shape for batch at ${batch.start}`);
      const data = logits.data as Float32Array;
      for (let i = 0; i < batch.dims[0]; i++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (data[i * 10 + c] > data[i * 10 + best]) best = c;
        if (best === batch.labels[i]) correct++;
      }
    }
    const accuracy = correct / set.count;
    t.comment(`accuracy on the first ${set.count} t10k images: ${accuracy} (meta.json: ${subset.accuracy})`);
    t.ok(Math.abs(accuracy - subset.accuracy) <= 0.01, `within 1 point of meta.json's ${subset.accuracy}, got ${accuracy}`);
    t.ok(accuracy >= 0.85, `at least 0.85, got ${accuracy}`);
  } finally {
    await session.release();
  }
});

t.test('the example model has the layers later passes rely on and a dynamic batch dim', async (t) => {
  const m = await loadModel(join(dir, 'model.onnx'));
  const g = m.proto.graph!;
  t.same(g.node.map((n) => n.opType), ['Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm', 'Relu', 'Gemm']);
  const opset = m.proto.opsetImport.find((o) => o.domain === '')?.version;
  t.ok(opset !== undefined && opset >= 13n && opset <= 17n, `default-domain opset 13..17, got ${opset}`);
  const dims = (v: (typeof g.input)[number]) => {
    const type = v.type?.value;
    return type?.case === 'tensorType' ? type.value.shape?.dim.map((d) => d.value.case === 'dimParam' ? d.value.value : Number(d.value.value)) : undefined;
  };
  t.same(g.input.map((i) => [i.name, dims(i)]), [['input', ['N', 1, 28, 28]]]);
  t.same(g.output.map((o) => [o.name, dims(o)]), [['logits', ['N', 10]]]);
});
