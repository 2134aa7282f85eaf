import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { zipSync } from 'fflate';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { loadModel } from '../../../src/onnx/model.js';
import { makeTensor } from '../../../src/onnx/tensor.js';
import { openDataSource } from '../../../src/measure/datasets/open.js';
import type { DataBatch } from '../../../src/measure/datasets/source.js';

function npy(descr: string, shape: number[], data: ArrayBufferView): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

/** A model with inputs x[N,4] float (and optionally ids[N] int64), or x[1,4] with a fixed batch. */
function model(opts: { ids?: boolean; fixed?: boolean } = {}) {
  const b = new GraphBuilder('m');
  const x = b.input('x', DT.FLOAT, [opts.fixed ? 1 : 'N', 4]);
  b.output(b.op('Relu', [x]), DT.FLOAT);
  if (opts.ids) b.output(b.op('Identity', [b.input('ids', DT.INT64, ['N'])]), DT.INT64);
  return buildModel(b.graph);
}

async function all(src: { batches(o?: { batchSize?: number; limit?: number }): AsyncIterable<DataBatch> }, o = {}) {
  const out: DataBatch[] = [];
  for await (const b of src.batches(o)) out.push(b);
  return out;
}

t.test('.npy: rows in batches, a single example gets its batch dim, the model fixes the batch', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'x.npy'), npy('<f4', [10, 4], Float32Array.from({ length: 40 }, (_, i) => i)));
  const src = await openDataSource(join(dir, 'x.npy'), model());
  t.equal(src.format, 'npy');
  t.equal(src.count, 10);
  const bs = await all(src, { batchSize: 4 });
  t.same(bs.map((b) => b.feeds.x.dims), [[4, 4], [4, 4], [2, 4]]);
  t.same(Array.from(bs[2].feeds.x.data as Float32Array).slice(0, 2), [32, 33]);
  t.same((await all(src, { batchSize: 4, limit: 5 })).map((b) => b.feeds.x.dims[0]), [4, 1], 'limit counts examples');
  const fixed = await openDataSource(join(dir, 'x.npy'), model({ fixed: true }));
  t.same((await all(fixed, { batchSize: 4 })).map((b) => b.feeds.x.dims[0]), new Array(10).fill(1), 'a model fixed at batch 1 gets batches of 1');
  await writeFile(join(dir, 'one.npy'), npy('<f4', [4], Float32Array.of(1, 2, 3, 4)));
  const one = await openDataSource(join(dir, 'one.npy'), model());
  t.same((await all(one))[0].feeds.x.dims, [1, 4]);
});

t.test('mismatches fail at open time, naming file, input and dim', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'i.npy'), npy('<i8', [2, 4], new BigInt64Array(8)));
  await t.rejects(openDataSource(join(dir, 'i.npy'), model()), { code: 'DATASET_CORRUPT', message: /i.npy: holds int64 but model input "x" is float32; convert the data/ });
  await writeFile(join(dir, 'w.npy'), npy('<f4', [2, 5], new Float32Array(10)));
  await t.rejects(openDataSource(join(dir, 'w.npy'), model()), { message: /w.npy: dim 1 is 5 but model input "x" fixes it at 4/ });
  await writeFile(join(dir, 'r.npy'), npy('<f4', [2, 2, 2], new Float32Array(8)));
  await t.rejects(openDataSource(join(dir, 'r.npy'), model()), { message: /has rank 3 \[2,2,2\] but model input "x" is \[N,4\]/ });
  await t.rejects(openDataSource(join(dir, 'w.npy'), model({ ids: true })), { message: /a .npy holds one array but the model takes 2 inputs/ });
  await writeFile(join(dir, 'd.npz'), zipSync({ 'x.npy': npy('<f4', [2, 4], new Float32Array(8)) }));
  await t.rejects(openDataSource(join(dir, 'd.npz'), model({ ids: true })), { message: /no array for model input\(s\) ids/ });
  await writeFile(join(dir, 'a.csv'), '1,2');
  await t.rejects(openDataSource(join(dir, 'a.csv'), model()), { code: 'DATASET_NOT_FOUND', message: /unknown dataset format ".csv"/ });
  await t.rejects(openDataSource(join(dir, 'nothing'), model()), { code: 'DATASET_NOT_FOUND' });
  await t.rejects(openDataSource(dir, model()), { message: /neither ONNX test data .* nor an IDX pair/ });
});

t.test('.npz with two inputs and labels; .jsonl one example per line', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'd.npz'), zipSync({
    'x.npy': npy('<f4', [3, 4], Float32Array.from({ length: 12 }, (_, i) => i)),
    'ids.npy': npy('<i8', [3], BigInt64Array.of(5n, 6n, 7n)),
    'labels.npy': npy('<i8', [3], BigInt64Array.of(0n, 1n, 2n)),
  }));
  const npz = await openDataSource(join(dir, 'd.npz'), model({ ids: true }));
  const [b0, b1] = await all(npz, { batchSize: 2 });
  t.same([b0.feeds.x.dims, b0.feeds.ids.dims, b1.feeds.ids.dims], [[2, 4], [2], [1]]);
  t.same(Array.from(b1.labels!), [2]);
  await writeFile(join(dir, 'd.jsonl'), '{"x": [1, 2, 3, 4], "label": 1}\n{"x": [5, 6, 7, 8], "label": 0}\n{"x": [9, 9, 9, 9], "label": 1}\n');
  const jl = await openDataSource(join(dir, 'd.jsonl'), model());
  t.equal(jl.count, 3);
  const bs = await all(jl, { batchSize: 2 });
  t.same(bs.map((b) => b.feeds.x.dims), [[2, 4], [1, 4]]);
  t.same(Array.from(bs[0].feeds.x.data as Float32Array), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.same(Array.from(bs[0].labels!), [1, 0]);
  await writeFile(join(dir, 'bad.jsonl'), '{"x": [1, 2, 3, 4]}\n{"x": [1, 2, 3]}\n');
  await t.rejects(openDataSource(join(dir, 'bad.jsonl'), model()), { message: /bad.jsonl:2 "x": dim 1 is 3 but model input "x" fixes it at 4/ });
});

t.test('ONNX test-data folders: by tensor name or position, checked against the model', async (t) => {
  const dir = t.testdir();
  const pb = (name: string, dtype: number, dims: number[], data: Float32Array | BigInt64Array) => toBinary(TensorProtoSchema, makeTensor(name, dtype, dims, data));
  for (const k of [0, 1]) {
    await mkdir(join(dir, `test_data_set_${k}`));
    // Files out of input order, matched by their names.
    await writeFile(join(dir, `test_data_set_${k}`, 'input_0.pb'), pb('ids', DT.INT64, [2], BigInt64Array.of(1n, 2n)));
    await writeFile(join(dir, `test_data_set_${k}`, 'input_1.pb'), pb('x', DT.FLOAT, [2, 4], new Float32Array(8).fill(k)));
  }
  const src = await openDataSource(dir, model({ ids: true }));
  t.equal(src.format, 'testdata');
  t.equal(src.count, 4);
  const bs = await all(src);
  t.equal(bs.length, 2);
  t.same(bs[1].feeds.x.dims, [2, 4]);
  t.equal((bs[1].feeds.x.data as Float32Array)[0], 1);
  await t.rejects(openDataSource(dir, model()), { message: /2 input_\*.pb files but the model takes 1 inputs \(x\)/ });
});

t.test('an IDX folder (the example) feeds [N,1,28,28] with labels, scaled by its meta.json', async (t) => {
  const dir = join(import.meta.dirname, '../../../examples/fashion-mnist');
  const m = await loadModel(join(dir, 'model.onnx'));
  const src = await openDataSource(dir, m);
  t.equal(src.format, 'idx');
  t.equal(src.count, 10000);
  const [b] = await all(src, { batchSize: 16, limit: 16 });
  t.same(b.feeds.input.dims, [16, 1, 28, 28]);
  t.equal(b.labels!.length, 16);
  t.ok(Math.max(...(b.feeds.input.data as Float32Array)) <= 1, 'pixels scaled to 0..1 by meta.json');
  const raw = await openDataSource(dir, m, { scale: 1 });
  const [r] = await all(raw, { batchSize: 16, limit: 16 });
  t.ok(Math.max(...(r.feeds.input.data as Float32Array)) > 1, 'scale 1 keeps 0..255 (mnist-12 style)');
});
