// The retained `{base}/health` report: temperature, load, memory, throttling and the job at hand. A full report goes
// out at least every `intervalS` (that is the heartbeat a controller watches), and a changed one as soon as the
// change is worth telling (job started or ended, throttling flipped, temperature moved by `tempDeltaC`), but never
// more often than every `minGapS` (balena's throttled diffs). The probe reads a few /proc and /sys files only.
import type { HeartbeatConfig } from '../schema/config.js';
import { errorMessage } from '../errors.js';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';
import type { VersionedDoc } from './transport.js';

/** What the light health probe gives (src/profile/health.ts); unknown values are absent, with a note. */
export interface HealthReading {
  tempC?: number;
  load1?: number;
  memAvailableMB?: number;
  throttled?: boolean;
  notes: string[];
}

export interface AgentFacts {
  session?: number;
  job?: { id: string; type: string };
  queued: number;
  outbox: number;
  rssMB: number;
  uptimeS: number;
}

export interface HealthDoc extends VersionedDoc {
  v: 1;
  ts: string;
  session?: number;
  tempC?: number;
  load1?: number;
  memAvailableMB?: number;
  throttled?: boolean;
  job: { id: string; type: string } | null;
  queued: number;
  outbox: number;
  agentRssMB: number;
  uptimeS: number;
  notes: string[];
}

export interface HeartbeatOptions {
  settings: HeartbeatConfig;
  probe: () => Promise<HealthReading>;
  facts: () => AgentFacts;
  publish: (doc: HealthDoc) => Promise<void>;
  clock: Clock;
  log: Logger;
}

/** True when `next` differs from `last` enough to be reported before the heartbeat is due. */
export function isNews(last: HealthDoc | undefined, next: HealthDoc, tempDeltaC: number): boolean {
  if (!last) return true;
  if ((last.job?.id ?? null) !== (next.job?.id ?? null)) return true;
  if (last.throttled !== next.throttled) return true;
  if ((last.tempC === undefined) !== (next.tempC === undefined)) return true;
  if (last.tempC !== undefined && next.tempC !== undefined && Math.abs(last.tempC - next.tempC) >= tempDeltaC) return true;
  return false;
}

export class Heartbeat {
  private timer: unknown;
  private last: HealthDoc | undefined;
  private lastSentAt = -Infinity;
  private running = false;
  private settings: HeartbeatConfig;

  constructor(private readonly opts: HeartbeatOptions) {
    this.settings = opts.settings;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  configure(s: HeartbeatConfig): void {
    this.settings = s;
    if (this.running) {
      this.stop();
      this.start();
    }
  }

  /** Sends the current report now, whatever the throttle says (on every connect: a restarted broker lost it). */
  async publishNow(): Promise<void> {
    await this.tick(true);
  }

  /** Looks now (e.g. a job started or ended) and reports if that is news and the throttle allows. */
  poke(): void {
    if (this.running) void this.tick(false);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.opts.clock.setTimeout(async () => {
      await this.tick(false);
      this.schedule(this.settings.minGapS * 1000);
    }, ms);
  }

  private async tick(force: boolean): Promise<void> {
    try {
      const doc = await this.read();
      const now = this.opts.clock.now();
      const since = now - this.lastSentAt;
      const due = since >= this.settings.intervalS * 1000;
      const news = since >= this.settings.minGapS * 1000 && isNews(this.last, doc, this.settings.tempDeltaC);
      if (!force && !due && !news) return;
      this.last = doc;
      this.lastSentAt = now;
      await this.opts.publish(doc);
    } catch (e) {
      this.opts.log.warn('health report failed', { error: errorMessage(e) });
    }
  }

  private async read(): Promise<HealthDoc> {
    const [h, f] = [await this.opts.probe(), this.opts.facts()];
    return {
      v: 1,
      ts: new Date(this.opts.clock.now()).toISOString(),
      ...(f.session !== undefined ? { session: f.session } : {}),
      ...(h.tempC !== undefined ? { tempC: h.tempC } : {}),
      ...(h.load1 !== undefined ? { load1: h.load1 } : {}),
      ...(h.memAvailableMB !== undefined ? { memAvailableMB: h.memAvailableMB } : {}),
      ...(h.throttled !== undefined ? { throttled: h.throttled } : {}),
      job: f.job ?? null,
      queued: f.queued,
      outbox: f.outbox,
      agentRssMB: f.rssMB,
      uptimeS: f.uptimeS,
      notes: h.notes,
    };
  }
}
