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

/**
 * The execution providers onnxruntime-node's binary lists, asked in a child process: loading the native
 * library takes tens of MB and must not happen on the agent's event loop. `bundled: false` providers (CUDA,
 * TensorRT on x64) need extra libraries that onnxruntime-node does not ship. The child also proves the binary
 * loads on this OS (an old glibc fails here, with the loader's message in the note).
 */
export async function probeProviders(timeoutMs = 1500): Promise<{ providers?: Array<{ name: string; bundled: boolean }>; note?: string }> {
  const { execFile } = await import('node:child_process');
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  } catch (e) {
    return { note: `onnxruntime-node: not installed (${errorMessage(e)})` };
  }
  const script = `const o=require(${JSON.stringify(entry)});process.stdout.write(JSON.stringify(o.listSupportedBackends()))`;
  return new Promise((resolvePromise) => {
    execFile(process.execPath, ['-e', script], { timeout: timeoutMs, maxBuffer: 1 << 16 }, (err, stdout, stderr) => {
      if (err) {
        const why = (err as { killed?: boolean }).killed ? `no answer within ${timeoutMs} ms` : (stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? err.message);
        return resolvePromise({ note: `onnxruntime-node: cannot list execution providers (${why.trim()})` });
      }
      try {
        const list = JSON.parse(stdout) as Array<{ name?: unknown; bundled?: unknown }>;
        const providers = list.filter((p) => typeof p.name === 'string').map((p) => ({ name: String(p.name), bundled: p.bundled === true }));
        resolvePromise(providers.length ? { providers } : { note: 'onnxruntime-node: listed no execution providers' });
      } catch {
        resolvePromise({ note: `onnxruntime-node: unreadable provider list (${stdout.slice(0, 80)})` });
      }
    });
  });
}
