import t from 'tap';
import { join } from 'node:path';
import { nestedShape, nestedToTensor, readJsonLines } from '../../../src/measure/datasets/jsonl.js';

t.test('nested arrays become tensors; ragged, non-numeric and out-of-range values are named', async (t) => {
  t.same(nestedShape([[1, 2], [3, 4], [5, 6]], 'x'), [3, 2]);
  const f = nestedToTensor([[0.5, 1], [2, 3]], 'float32', 'x');
  t.same(f.dims, [2, 2]);
  t.same([...(f.data as Float32Array)], [0.5, 1, 2, 3]);
  t.same([...(nestedToTensor([7, 8], 'int64', 'x').data as BigInt64Array)], [7n, 8n]);
  t.throws(() => nestedShape([[1, 2], [3]], 'f:3 "input"'), { message: /f:3 "input"\[1\]: ragged array/ });
  t.throws(() => nestedShape([[1, 'a']], 'w'), { message: /w\[0\]\[1\]: "a" is not a number/ });
  t.throws(() => nestedToTensor([1.5], 'int64', 'w'), { message: /element 0 is 1.5, but the model input is int64/ });
  t.throws(() => nestedToTensor([300], 'uint8', 'w'), { message: /outside uint8's range/ });
});

t.test('streams objects line by line and names the bad line', async (t) => {
  const dir = t.testdir({ 'a.jsonl': '{"x": [1]}\n\n{"x": [2], "label": 1}\n', 'b.jsonl': '{"x": [1]}\n[1, 2]\n', 'c.jsonl': '{"x": [1]}\n{oops\n' });
  const got = [];
  for await (const l of readJsonLines(join(dir, 'a.jsonl'))) got.push(l);
  t.same(got.map((l) => l.line), [1, 3], 'blank lines are skipped, numbering is kept');
  const drain = async (p: string) => { for await (const l of readJsonLines(p)) void l; };
  await t.rejects(drain(join(dir, 'b.jsonl')), { message: /b.jsonl:2: each line must be an object/ });
  await t.rejects(drain(join(dir, 'c.jsonl')), { message: /c.jsonl:2: not valid JSON/ });
  await t.rejects(drain(join(dir, 'missing.jsonl')), { code: 'DATASET_NOT_FOUND' });
});
