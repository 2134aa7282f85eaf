// Models sent over MQTT itself, for devices that reach nothing but the broker. The controller publishes the file in
// chunks, QoS 1, raw bytes, on `{base}/transfer/{transferId}/{index}` (index from 0), and names the transfer in a
// deploy job `{ transfer: { id, chunks, bytes } }`. Each chunk is written to disk before its PUBACK, so a chunk the
// broker handed over is never lost; chunks may arrive before or after the job, in any order, more than once.
import { EventEmitter } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { CanceledError, errorMessage } from '../../errors.js';
import { TOPIC_LEVEL_PATTERN } from '../../schema/config.js';
import type { OpContext } from '../../types.js';
import { writeFileAtomic } from '../../util/atomic.js';
import type { Logger } from '../log.js';

export interface TransferLimits {
  /** Largest chunk accepted. */
  maxChunkBytes: number;
  /** Largest whole transfer. */
  maxBytes: number;
  /** Transfers held at once (chunks of a further one are refused). */
  maxOpen: number;
  /** Chunk count ceiling. */
  maxChunks?: number;
}

export type ChunkOutcome = 'stored' | 'duplicate' | 'refused';

const ID = new RegExp(TOPIC_LEVEL_PATTERN);

export class TransferStore {
  readonly dir: string;
  private readonly events = new EventEmitter();
  /** Bumped by every stored chunk, so a waiter can tell it missed one between looking and listening. */
  private readonly stored = new Map<string, number>();

  constructor(stateDir: string, private readonly limits: TransferLimits, private readonly log: Logger) {
    this.dir = join(stateDir, 'transfers');
    this.events.setMaxListeners(0);
  }

  /** Removes transfers nobody finished within `maxAgeMs` and leftover temp files. */
  async load(maxAgeMs = 7 * 24 * 3600 * 1000, now = Date.now()): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const id of await readdir(this.dir)) {
      const s = await stat(join(this.dir, id)).catch(() => undefined);
      if (s && now - s.mtimeMs > maxAgeMs) await this.remove(id);
    }
  }

  /** Stores one chunk; resolves once it is on disk. Bad ids, indexes or sizes are refused (and logged). */
  async put(id: string, indexText: string, payload: Buffer): Promise<ChunkOutcome> {
    const index = Number(indexText);
    const maxChunks = this.limits.maxChunks ?? 100_000;
    const refuse = (why: string): ChunkOutcome => {
      this.log.warn(`transfer chunk refused: ${why}`, { transfer: id, index: indexText });
      return 'refused';
    };
    if (!ID.test(id)) return refuse('the transfer id is not one topic level of [A-Za-z0-9._-]');
    if (!/^\d{1,6}$/.test(indexText) || index >= maxChunks) return refuse(`the index must be an integer from 0 to ${maxChunks - 1}`);
    if (payload.length === 0 || payload.length > this.limits.maxChunkBytes) return refuse(`a chunk must hold 1 to ${this.limits.maxChunkBytes} bytes, this one holds ${payload.length}`);
    const dir = join(this.dir, id);
    const open = await readdir(this.dir).catch(() => [] as string[]);
    if (!open.includes(id)) {
      if (open.length >= this.limits.maxOpen) return refuse(`${open.length} transfers are already open (the limit); finish or cancel one first`);
      await mkdir(dir, { recursive: true });
    }
    const file = join(dir, `${String(index).padStart(6, '0')}.chunk`);
    if (await stat(file).then(() => true, () => false)) return 'duplicate';
    const held = await this.bytes(id);
    if (held + payload.length > this.limits.maxBytes) return refuse(`the transfer would exceed ${this.limits.maxBytes} bytes (deploy.maxModelBytes)`);
    await writeFileAtomic(file, payload);
    this.stored.set(id, (this.stored.get(id) ?? 0) + 1);
    this.events.emit(id);
    return 'stored';
  }

  /** The indexes of the chunks held for a transfer. */
  async chunks(id: string): Promise<Set<number>> {
    const names = await readdir(join(this.dir, id)).catch(() => [] as string[]);
    return new Set(names.filter((n) => n.endsWith('.chunk')).map((n) => Number(n.slice(0, -6))));
  }

  /** Waits until chunks 0..count-1 are all held; progress says how many are. */
  async waitComplete(id: string, count: number, ctx: OpContext): Promise<void> {
    for (;;) {
      if (ctx.signal?.aborted) throw new CanceledError(`waiting for transfer ${id}`);
      const before = this.stored.get(id) ?? 0;
      const have = await this.chunks(id);
      let n = 0;
      for (let i = 0; i < count; i++) if (have.has(i)) n++;
      ctx.onProgress?.({ step: `receiving model over MQTT (${n}/${count} chunks)`, pct: (100 * n) / count });
      if (n === count) return;
      if ((this.stored.get(id) ?? 0) !== before) continue;
      // Woken by the next chunk, or after a while in case an event was missed.
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 5000);
      const onAbort = () => ac.abort();
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      await once(this.events, id, { signal: ac.signal }).catch(() => {});
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Writes chunks 0..count-1 in order into `dest`. */
  async assemble(id: string, count: number, dest: string): Promise<number> {
    const out = createWriteStream(dest);
    let bytes = 0;
    try {
      for (let i = 0; i < count; i++) {
        const data = await readFile(join(this.dir, id, `${String(i).padStart(6, '0')}.chunk`));
        bytes += data.length;
        if (!out.write(data)) await once(out, 'drain');
      }
    } finally {
      out.end();
      await once(out, 'close').catch(() => {});
    }
    return bytes;
  }

  async remove(id: string): Promise<void> {
    if (!ID.test(id)) return;
    await rm(join(this.dir, id), { recursive: true, force: true }).catch((e) => this.log.warn(`cannot remove transfer ${id}`, { error: errorMessage(e) }));
  }

  private async bytes(id: string): Promise<number> {
    let total = 0;
    for (const name of await readdir(join(this.dir, id)).catch(() => [] as string[])) {
      total += (await stat(join(this.dir, id, name)).catch(() => ({ size: 0 }))).size;
    }
    return total;
  }
}
