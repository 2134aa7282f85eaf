import t from 'tap';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prepareOutputs } from '../../src/util/atomic.js';
import { EdgetuneError } from '../../src/errors.js';

t.test('prepareOutputs creates missing folders and leaves no file behind', async (t) => {
  const dir = t.testdir();
  await prepareOutputs([{ path: join(dir, 'a/b/model.onnx'), what: 'output' }, { path: join(dir, 'c/r.json'), what: 'result' }]);
  t.ok((await stat(join(dir, 'a/b'))).isDirectory());
  t.ok((await stat(join(dir, 'c'))).isDirectory());
  t.same(await readdir(join(dir, 'a/b')), [], 'only the folder: the file itself is the job\'s to write');
});

t.test('prepareOutputs: a file in the way, or a folder as the file, is a usage error naming the flag and path', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'plain'), 'x');
  const underFile = join(dir, 'plain/model.onnx');
  const err = await prepareOutputs([{ path: underFile, what: 'report' }]).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof EdgetuneError, 'an EdgetuneError');
  t.equal((err as EdgetuneError).code, 'USAGE');
  t.equal((err as Error).message, `report ${underFile}: part of ${join(dir, 'plain')} is a file, not a folder: choose another path`);
  await t.rejects(prepareOutputs([{ path: dir, what: 'output' }]), { code: 'USAGE', message: `output ${dir}: it is a folder: give a file name` });
});
