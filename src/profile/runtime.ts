import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { errorMessage } from '../errors.js';

/**
 * The installed onnxruntime-node version. Its package.json is read first because importing the package
 * loads the native library (tens of MB); the import is the fallback for installs that hide package.json.
 */
export async function onnxruntimeVersion(): Promise<{ version?: string; note?: string }> {
  try {
    const pkgPath = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    const pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string') return { version: pkg.version };
  } catch {
    // fall through to the import
  }
  try {
    const ort = await import('onnxruntime-node');
    const v = ort.env.versions?.node ?? ort.env.versions?.common;
    if (v) return { version: v };
    return { note: 'onnxruntime-node: loaded but reports no version' };
  } catch (e) {
    return { note: `onnxruntime-node: not loadable (${errorMessage(e)}); install it to benchmark on this device` };
  }
}
