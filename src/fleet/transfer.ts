// Deploying a model over MQTT itself, for devices that reach nothing but the broker: the controller's half of the
// agent's chunked transfer (src/agent/deploy/transfer.ts). The file is cut into chunks of at most the devices'
// limits.maxPayloadBytes and each chunk is published, raw bytes at QoS 1, on every target device's own
// `{base}/transfer/{id}/{index}` (the ACL lets a device read only its own). The deploy job then names the transfer
// `{ id, chunks, bytes }` and the sha256 of the whole file, which the agent checks after putting the chunks together.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError, errorMessage } from '../errors.js';
import type { FleetLink } from './link.js';

/** The agent's default limits.maxPayloadBytes: the largest chunk a device takes unless configured otherwise. */
export const DEFAULT_CHUNK_BYTES = 262_144;

export interface ModelTransfer {
  /** One topic level; derived from the sha256, so a resent or repeated transfer of one file reuses its chunks. */
  id: string;
  sha256: string;
  bytes: number;
  chunks: Buffer[];
}

/** Reads `file` and cuts it into chunks of `chunkBytes`. */
export async function prepareTransfer(file: string, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<ModelTransfer> {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1024) throw new UsageError(`chunk size ${chunkBytes}: give at least 1024 bytes (and no more than the devices' limits.maxPayloadBytes)`);
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    throw new UsageError(`--file ${file}: cannot read the model to send: ${errorMessage(e)}`);
  }
  if (!data.length) throw new UsageError(`--file ${file}: the file is empty`);
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) chunks.push(data.subarray(at, at + chunkBytes));
  const sha256 = createHash('sha256').update(data).digest('hex');
  return { id: `m-${sha256.slice(0, 32)}-${chunkBytes}`, sha256, bytes: data.length, chunks };
}

/** The `transfer` field of the deploy job for this transfer. */
export function transferParams(t: ModelTransfer): { id: string; chunks: number; bytes: number } {
  return { id: t.id, chunks: t.chunks.length, bytes: t.bytes };
}

/**
 * Publishes every chunk to every device; resolves when the broker has acknowledged them all. At most `inFlight`
 * chunks wait for their PUBACK at once, so a big model to many devices does not sit in memory as one queue.
 */
export async function sendTransfer(link: FleetLink, devices: string[], t: ModelTransfer, opts: { inFlight?: number; signal?: AbortSignal; onDevice?: (device: string) => void } = {}): Promise<void> {
  const work = devices.flatMap((device) => t.chunks.map((chunk, index) => ({ device, index, chunk })));
  const left = new Map(devices.map((d) => [d, t.chunks.length]));
  let next = 0;
  const worker = async () => {
    while (next < work.length) {
      opts.signal?.throwIfAborted();
      const w = work[next++];
      await link.publishChunk(w.device, t.id, w.index, w.chunk);
      const n = left.get(w.device)! - 1;
      left.set(w.device, n);
      if (n === 0) opts.onDevice?.(w.device);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.inFlight ?? 8, work.length)) }, worker));
}
