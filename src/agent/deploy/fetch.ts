// Getting a model's bytes into a staging file: a local file (inside the folders jobs may use), an http(s) URL
// (resumed with a Range request after an interruption: the partial file survives a crash), or a chunked MQTT
// transfer (transfer.ts). Nothing here decides whether the bytes are good; verify.ts does.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat, truncate, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { CanceledError, errorMessage } from '../../errors.js';
import type { OpContext } from '../../types.js';
import { AgentJobError } from '../runner.js';
import type { TransferStore } from './transfer.js';

export type DeploySource =
  | { kind: 'file'; path: string }
  | { kind: 'url'; url: string }
  | { kind: 'transfer'; id: string; chunks: number; bytes: number };

export interface FetchOptions {
  transfers: TransferStore;
  maxBytes: number;
  /** An HTTP download that receives nothing for this long fails. */
  stallTimeoutS: number;
  /** Tries of a download whose connection drops (each resumes); default 5. */
  retries?: number;
  /** Pause before the second try, doubling after; default 1000 ms. */
  retryBaseMs?: number;
}

/** Fills `dest` with the source's bytes. A partial `dest` from an earlier attempt is resumed where possible. */
export async function fetchSource(src: DeploySource, dest: string, opts: FetchOptions, ctx: OpContext): Promise<void> {
  if (src.kind === 'file') return copyFile(src.path, dest, opts, ctx);
  if (src.kind === 'url') return downloadWithRetries(src.url, dest, opts, ctx);
  await opts.transfers.waitComplete(src.id, src.chunks, ctx);
  const bytes = await opts.transfers.assemble(src.id, src.chunks, dest);
  if (bytes !== src.bytes) {
    throw new AgentJobError('DEPLOY_REFUSED', `/params/transfer/bytes: the ${src.chunks} chunks of transfer ${src.id} hold ${bytes} bytes, the job says ${src.bytes}`);
  }
}

async function copyFile(path: string, dest: string, opts: FetchOptions, ctx: OpContext): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) throw new AgentJobError('MODEL_NOT_FOUND', `/params/model: ${path} is not a file`);
  if (s.size > opts.maxBytes) throw tooBig(s.size, opts.maxBytes);
  const out = createWriteStream(dest);
  let done = 0;
  try {
    for await (const chunk of createReadStream(path, { signal: ctx.signal })) {
      done += (chunk as Buffer).length;
      if (!out.write(chunk)) await once(out, 'drain');
      ctx.onProgress?.({ step: 'copying the model', pct: (100 * done) / Math.max(1, s.size) });
    }
  } finally {
    out.end();
    await once(out, 'close').catch(() => {});
  }
}

/** A dropped connection is retried (resuming) a few times with growing pauses; an HTTP error or an untrusted certificate is not. */
async function downloadWithRetries(url: string, dest: string, opts: FetchOptions, ctx: OpContext): Promise<void> {
  const tries = opts.retries ?? 5;
  for (let i = 1; ; i++) {
    try {
      return await download(url, dest, opts, ctx);
    } catch (e) {
      const transient = e instanceof AgentJobError && e.code === 'DOWNLOAD_FAILED' && !(e instanceof FinalDownloadError);
      if (!transient || i >= tries || ctx.signal?.aborted) throw e;
      ctx.onProgress?.({ step: `download interrupted (${e.message}); resuming, try ${i + 1} of ${tries}`, pct: 0 });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { ctx.signal?.removeEventListener('abort', onAbort); resolve(); }, (opts.retryBaseMs ?? 1000) * 2 ** (i - 1));
        const onAbort = () => { clearTimeout(timer); reject(new CanceledError(`download of ${redact(url)}`)); };
        ctx.signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }
}

/**
 * Downloads with resume: with `have` bytes already in `dest`, asks for `Range: bytes=have-`. A 206 whose range
 * starts there is appended; a 200 means the server ignores ranges, so the file starts over; a 416 means the file
 * is already whole.
 */
async function download(url: string, dest: string, opts: FetchOptions, ctx: OpContext): Promise<void> {
  const have = (await stat(dest).catch(() => undefined))?.size ?? 0;
  const stall = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, stall.signal]) : stall.signal;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(), opts.stallTimeoutS * 1000);
  };
  arm();
  let res: Response;
  try {
    res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal, redirect: 'follow' });
  } catch (e) {
    clearTimeout(timer);
    if (ctx.signal?.aborted) throw new CanceledError(`download of ${redact(url)}`);
    const cert = certificateProblem(e);
    // Trying again cannot make a certificate trusted; say what would.
    if (cert) throw new FinalDownloadError(`GET ${redact(url)}: the server's TLS certificate is not trusted (${cert}); give the agent the CA that signed it with NODE_EXTRA_CA_CERTS=<file.pem> in its environment, or serve the model from a host the system CAs trust`);
    throw new AgentJobError('DOWNLOAD_FAILED', `GET ${redact(url)}: ${stall.signal.aborted ? `no answer within ${opts.stallTimeoutS} s` : errorMessage(e)}${causeOf(e)}`);
  }
  if (res.status === 416 && have > 0) {
    clearTimeout(timer);
    await res.body?.cancel();
    return;
  }
  let append = false;
  if (res.status === 206) {
    const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1];
    append = Number(start) === have;
    if (!append) {
      clearTimeout(timer);
      await res.body?.cancel();
      await truncate(dest, 0);
      throw new AgentJobError('DOWNLOAD_FAILED', `GET ${redact(url)}: the server answered a range other than the one asked for; the partial file was discarded, retry`);
    }
  } else if (res.status !== 200) {
    clearTimeout(timer);
    await res.body?.cancel();
    throw new FinalDownloadError(`GET ${redact(url)}: HTTP ${res.status} ${res.statusText}`);
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? length + (append ? have : 0) : undefined;
  if (total !== undefined && total > opts.maxBytes) {
    clearTimeout(timer);
    await res.body?.cancel();
    throw tooBig(total, opts.maxBytes);
  }
  const fh = await open(dest, append ? 'a' : 'w');
  let done = append ? have : 0;
  try {
    const reader = res.body!.getReader();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      arm();
      done += value.byteLength;
      if (done > opts.maxBytes) throw tooBig(done, opts.maxBytes);
      await fh.write(value);
      ctx.onProgress?.({ step: 'downloading the model', pct: total ? (100 * done) / total : 0 });
    }
    await fh.sync();
  } catch (e) {
    if (e instanceof AgentJobError) throw e;
    if (ctx.signal?.aborted) throw new CanceledError(`download of ${redact(url)}`);
    // What arrived stays in `dest`: the next attempt resumes from there.
    throw new AgentJobError('DOWNLOAD_FAILED', `GET ${redact(url)}: ${stall.signal.aborted ? `stalled for ${opts.stallTimeoutS} s` : errorMessage(e)} after ${done} bytes (kept; the next attempt resumes)`);
  } finally {
    clearTimeout(timer);
    await fh.close();
  }
}

/** URLs may carry credentials (user:pass@ or a signed query); logs and errors show neither. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** A download failure that another try would only repeat (an HTTP error, an untrusted certificate). */
class FinalDownloadError extends AgentJobError {
  constructor(message: string) {
    super('DOWNLOAD_FAILED', message);
  }
}

/** fetch() reports TLS failures as "fetch failed" with the OpenSSL code on `cause`: pick those out. */
function certificateProblem(e: unknown): string | undefined {
  const c = (e as { cause?: { code?: string; message?: string } })?.cause;
  if (!c?.code || !/CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER)|ERR_TLS_CERT/.test(c.code)) return undefined;
  return `${c.code}: ${c.message ?? 'certificate rejected'}`;
}

function causeOf(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } })?.cause;
  return c ? ` (${c.code ?? c.message})` : '';
}

function tooBig(bytes: number, max: number): AgentJobError {
  return new AgentJobError('DEPLOY_REFUSED', `the model is ${bytes} bytes, over deploy.maxModelBytes (${max})`);
}

/** Removes a staging file, ignoring its absence. */
export async function discard(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}
