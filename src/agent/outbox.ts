// Every QoS 1 message the agent owes the fleet (job statuses, results, MQTT 5 replies) is written to disk before it
// is sent and deleted only once the broker has acknowledged it, so a broker outage, an agent crash or a power cut
// delays a result but never loses it. Delivery is at least once: a controller de-duplicates statuses by
// (job id, seq) and results by job id.
//
// One file per entry, `<seq>.json`, written atomically (temp, fsync, rename, fsync dir). An entry is a batch of
// messages sent in order (a job's result, its terminal status and its reply go together). A batch can be held:
// persisted but not sent until released, so the job store can record the job as finished in between (see
// runner.ts: a terminal status must never reach the broker for a job that a restart would run again).
import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Logger } from './log.js';
import type { VersionedDoc } from './transport.js';

export interface OutMessage {
  topic: string;
  doc: VersionedDoc;
  retain?: boolean;
  /** MQTT 5 correlation data of a reply, base64 (the file is JSON). */
  correlationData?: string;
}

/** What a batch means to crash recovery: the job whose terminal status it carries. */
export interface OutboxTag {
  job: string;
  terminal: boolean;
}

export interface OutboxEntry {
  seq: number;
  messages: OutMessage[];
  tag?: OutboxTag;
}

export interface OutboxOptions {
  dir: string;
  /** Sends one message; resolves when the broker acknowledged it. */
  publish: (m: OutMessage) => Promise<void>;
  connected: () => boolean;
  log: Logger;
  /** Entries kept on disk at most; beyond it the oldest non-terminal ones are dropped (with an error log). */
  maxEntries?: number;
  /** Messages in flight at once (below the broker's receive maximum: Mosquitto's default is 20). */
  window?: number;
}

interface Live extends OutboxEntry {
  file: string;
  held: boolean;
  inflight: boolean;
}

const FILE = /^(\d{12})\.json$/;

export class Outbox {
  private readonly entries: Live[] = [];
  private seq = 0;
  private inflightMessages = 0;
  private writes: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private drainWaiters: Array<() => void> = [];
  /** Counters for health reports and benchmarks. */
  readonly stats = { added: 0, acked: 0, retried: 0, dropped: 0 };

  constructor(private readonly opts: OutboxOptions) {}

  get size(): number {
    return this.entries.length;
  }

  /** Reads what a previous run left (all released), oldest first. Call once, before anything is added. */
  async load(): Promise<OutboxEntry[]> {
    await mkdir(this.opts.dir, { recursive: true });
    const names = (await readdir(this.opts.dir)).sort();
    for (const name of names) {
      const path = join(this.opts.dir, name);
      if (name.endsWith('.tmp')) {
        // A write that a crash interrupted: never renamed, so never acknowledged to anyone.
        await unlink(path).catch(() => {});
        continue;
      }
      const m = FILE.exec(name);
      if (!m) continue;
      try {
        const doc = JSON.parse(await readFile(path, 'utf8')) as OutboxEntry;
        if (!Array.isArray(doc.messages)) throw new Error('no messages array');
        this.entries.push({ seq: Number(m[1]), messages: doc.messages, tag: doc.tag, file: path, held: false, inflight: false });
      } catch (e) {
        // Atomic writes make this unlikely; keep the evidence out of the way rather than resend garbage.
        this.opts.log.error(`outbox entry ${path} is unreadable; moved aside`, { error: errorMessage(e) });
        await rename(path, `${path}.corrupt`).catch(() => {});
      }
    }
    this.seq = this.entries.at(-1)?.seq ?? 0;
    if (this.entries.length) this.opts.log.info(`outbox: ${this.entries.length} unacknowledged entries from the previous run`);
    return this.entries.map(({ seq, messages, tag }) => ({ seq, messages, tag }));
  }

  /**
   * Persists a batch and (unless held) starts sending it. Resolves once it is on disk. Calls are serialised, so
   * entries keep the order in which add() was called.
   */
  add(messages: OutMessage[], opts: { tag?: OutboxTag; hold?: boolean } = {}): Promise<number> {
    const run = this.writes.then(async () => {
      const seq = ++this.seq;
      const file = join(this.opts.dir, `${String(seq).padStart(12, '0')}.json`);
      const entry: OutboxEntry = { seq, messages, ...(opts.tag ? { tag: opts.tag } : {}) };
      await writeFileAtomic(file, JSON.stringify(entry)).catch(async (e) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await mkdir(this.opts.dir, { recursive: true });
        await writeFileAtomic(file, JSON.stringify(entry));
      });
      this.entries.push({ ...entry, file, held: opts.hold ?? false, inflight: false });
      this.stats.added++;
      await this.enforceLimit();
      this.pump();
      return seq;
    });
    this.writes = run.catch(() => {});
    return run;
  }

  /** Lets a held entry go. */
  release(seq: number): void {
    const e = this.entries.find((x) => x.seq === seq);
    if (e) e.held = false;
    this.pump();
  }

  /** Sends what can be sent now; call on every (re)connect. */
  pump(): void {
    if (this.stopped || !this.opts.connected()) return;
    const window = this.opts.window ?? 10;
    for (const e of this.entries) {
      if (this.inflightMessages >= window) break;
      if (e.held || e.inflight) continue;
      this.send(e);
    }
  }

  /** Resolves when nothing is left to send (tests, benchmarks, a clean stop). */
  drained(): Promise<void> {
    if (this.entries.length === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Stops sending; what is on disk stays for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.writes;
  }

  private send(e: Live): void {
    e.inflight = true;
    this.inflightMessages += e.messages.length;
    // Publishes are issued in order; MQTT keeps the order of one client's messages on the wire.
    const sent = e.messages.map((m) => this.opts.publish(m));
    Promise.all(sent).then(
      async () => {
        this.inflightMessages -= e.messages.length;
        const i = this.entries.indexOf(e);
        if (i >= 0) this.entries.splice(i, 1);
        this.stats.acked++;
        // A file that survives a power cut here only means one more duplicate delivery.
        await unlink(e.file).catch((err) => this.opts.log.warn(`cannot delete acknowledged outbox entry ${e.file}`, { error: errorMessage(err) }));
        if (this.entries.length === 0) for (const w of this.drainWaiters.splice(0)) w();
        this.pump();
      },
      async (err) => {
        this.inflightMessages -= e.messages.length;
        e.inflight = false;
        const reason = (err as { code?: unknown }).code;
        if (typeof reason === 'number' && reason >= 0x80) {
          // An MQTT 5 refusal (e.g. 135, not authorised by the broker's ACL) will not change on a resend.
          this.entries.splice(this.entries.indexOf(e), 1);
          this.stats.dropped++;
          this.opts.log.error(`broker refused outbox entry ${e.seq} (reason code ${reason}); dropped: check the broker ACL`, { topics: e.messages.map((m) => m.topic), error: errorMessage(err) });
          await unlink(e.file).catch(() => {});
          return;
        }
        // The client gave up on it (connection closed before the store took it, client ending): send it again
        // after the next connect. MQTT.js resends what it did store by itself, so this is rare.
        this.stats.retried++;
        this.opts.log.debug('outbox: publish not acknowledged; will resend after reconnect', { seq: e.seq, error: errorMessage(err) });
      },
    );
  }

  private async enforceLimit(): Promise<void> {
    const max = this.opts.maxEntries ?? 10000;
    while (this.entries.length > max) {
      // Progress-like statuses matter least: drop the oldest entry that does not end a job, else the oldest.
      const victim = this.entries.find((x) => !x.inflight && !x.held && !x.tag?.terminal) ?? this.entries.find((x) => !x.inflight && !x.held);
      if (!victim) return;
      this.entries.splice(this.entries.indexOf(victim), 1);
      this.stats.dropped++;
      this.opts.log.error(`outbox full (${max} entries, limits.maxOutbox): dropped entry ${victim.seq}`, { topics: victim.messages.map((m) => m.topic) });
      await unlink(victim.file).catch(() => {});
    }
  }
}
