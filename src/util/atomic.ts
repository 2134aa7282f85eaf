import { constants } from 'node:fs';
import { access, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EdgetuneError } from '../errors.js';

/**
 * Writes a file so that a power cut leaves either the old or the new content, never a torn file:
 * temp file in the same directory, fsync, rename, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dir);
}

export async function fsyncDir(dir: string): Promise<void> {
  // Directory fsync makes the rename durable; some filesystems refuse it, which is not fatal.
  try {
    const d = await open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  } catch { /* best effort */ }
}

/** `replacer` as JSON.stringify's (e.g. util/json.ts infinityAsString: by default ±Infinity and NaN become null). */
export async function writeJsonAtomic(path: string, value: unknown, replacer?: (key: string, value: unknown) => unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, replacer, 2) + '\n');
}

/**
 * Creates the folder each file will be written into and checks that it can be written, so that a job fails before
 * its work (a tune runs for minutes) rather than at its end. `what` names the flag or field for the error.
 */
export async function prepareOutputs(files: Array<{ path: string; what: string }>): Promise<void> {
  for (const { path, what } of files) {
    const dir = dirname(resolve(path));
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
      const st = await stat(resolve(path)).catch(() => undefined);
      if (st?.isDirectory()) throw Object.assign(new Error('it is a folder'), { code: 'EISDIR' });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'EISDIR' ? 'it is a folder: give a file name'
        : err.code === 'ENOTDIR' || err.code === 'EEXIST' ? `part of ${dir} is a file, not a folder: choose another path`
          : `cannot write into ${dir} (${err.code ?? err.message}): choose another path`;
      throw new EdgetuneError('USAGE', `${what} ${path}: ${why}`);
    }
  }
}
