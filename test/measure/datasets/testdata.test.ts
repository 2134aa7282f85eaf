import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { DT } from '../../../src/onnx/dtype.js';
import { makeTensor } from '../../../src/onnx/tensor.js';
import { isTestDataDir, listTestDataSets, parseTensorFile, readTensorFile } from '../../../src/measure/datasets/testdata.js';

async function writePb(path: string, name: string, dtype: number, dims: number[], data: Float32Array | BigInt64Array): Promise<void> {
  await writeFile(path, toBinary(TensorProtoSchema, makeTensor(name, dtype, dims, data)));
}

t.test('finds test_data_set_N folders in numeric order, or one flat set', async (t) => {
  const dir = t.testdir();
  for (const k of [10, 2]) {
    await mkdir(join(dir, `test_data_set_${k}`));
    await writePb(join(dir, `test_data_set_${k}`, 'input_1.pb'), 'b', DT.INT64, [1], BigInt64Array.of(BigInt(k)));
    await writePb(join(dir, `test_data_set_${k}`, 'input_0.pb'), 'a', DT.FLOAT, [1, 2], Float32Array.of(k, k));
  }
  t.ok(await isTestDataDir(dir));
  const sets = await listTestDataSets(dir);
  t.same(sets.map((s) => s.dir.split('_').pop()), ['2', '10']);
  t.same(sets[0].inputs.map((f) => f.split('/').pop()), ['input_0.pb', 'input_1.pb']);
  const flat = join(dir, 'test_data_set_2');
  t.equal((await listTestDataSets(flat)).length, 1, 'a folder holding input_0.pb is one set');
  const r = await readTensorFile(sets[1].inputs[1]);
  t.equal(r.name, 'b');
  t.same([...(r.tensor.data as BigInt64Array)], [10n]);
  t.notOk(await isTestDataDir(join(dir, 'nope')));
});

t.test('errors name the file', async (t) => {
  t.throws(() => parseTensorFile(Uint8Array.of(0xff, 0xff, 0xff), '/x/input_0.pb'), { code: 'DATASET_CORRUPT', message: /\/x\/input_0.pb: not a serialized ONNX TensorProto/ });
  const dir = t.testdir({ test_data_set_0: { 'output_0.pb': '' } });
  await t.rejects(listTestDataSets(dir), { message: /test_data_set_0: a test-data set with no input_0.pb/ });
  await t.rejects(listTestDataSets(join(dir, 'missing')), { code: 'DATASET_NOT_FOUND' });
});
