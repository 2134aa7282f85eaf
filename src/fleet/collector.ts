// Collector mode: records every job result and terminal job status of a fleet in the results store, whoever
// sent the job. With a shared subscription ($share/<group>/…) the broker gives each message to one collector
// of the group, so several collectors (each with its own database file) split the load of a big fleet on a
// clustered broker; `fleet results --db a.db --db b.db` reads them together.
import { TERMINAL_STATES, type JobState } from '../agent/jobs.js';
import type { Logger } from '../agent/log.js';
import { errorMessage } from '../errors.js';
import type { Target } from '../types.js';
import type { TlsMaterial } from './broker-auth.js';
import { FleetLink, quietLogger, type FleetMessage } from './link.js';
import type { JobRow, ResultsStore } from './store/results.js';
import { fleetTopics, sharedFilter } from './topics.js';
import { FleetView, targetMatcher } from './view.js';

export interface CollectorOptions {
  url: string;
  fleet: string;
  store: ResultsStore;
  /** Shared subscription group; undefined subscribes plainly (every collector gets everything; aedes needs this). */
  shareGroup?: string;
  /** Stable, so the broker keeps this collector's session and queues its messages while it restarts. */
  clientId?: string;
  username?: string;
  password?: string;
  tls?: TlsMaterial;
  protocolVersion?: 4 | 5;
  targets?: Target[];
  log?: Logger;
  /** Messages are written to the store in batches at most this far apart. */
  batchMs?: number;
  /** After every batch written (e.g. to stop after so many results). */
  onBatch?: (stats: CollectorStats) => void;
}

export interface CollectorStats {
  results: number;
  duplicates: number;
  statuses: number;
}

export class Collector {
  readonly stats: CollectorStats = { results: 0, duplicates: 0, statuses: 0 };
  private readonly link: FleetLink;
  private readonly view: FleetView;
  private readonly log: Logger;
  private pendingResults: Array<{ device: string; jobId: string; receivedAt: string; doc: unknown }> = [];
  private pendingJobs: JobRow[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly opts: CollectorOptions) {
    this.log = opts.log ?? quietLogger();
    this.view = new FleetView(opts.targets ? targetMatcher(opts.targets) : undefined);
    this.link = new FleetLink({
      url: opts.url, fleet: opts.fleet, clientId: opts.clientId ?? `edgetune-collector-${opts.fleet}`,
      username: opts.username, password: opts.password, tls: opts.tls, protocolVersion: opts.protocolVersion, log: this.log,
    });
  }

  /** The filters this collector subscribes to (shared ones carry the $share prefix). */
  filters(): string[] {
    const f = [fleetTopics.jobResults(this.opts.fleet), fleetTopics.jobStatuses(this.opts.fleet)];
    return this.opts.shareGroup ? f.map((x) => sharedFilter(this.opts.shareGroup!, x)) : f;
  }

  async start(ctx: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    this.link.events.on('message', (m) => this.onMessage(m), this);
    // Profiles are not shared: every collector needs every device's target.
    await this.link.subscribe(fleetTopics.retained(this.opts.fleet, 'profile'), 1);
    for (const f of this.filters()) await this.link.subscribe(f, 1);
    await this.link.start(ctx);
  }

  private onMessage(m: FleetMessage): void {
    const at = m.at;
    if (at.kind === 'profile') {
      this.view.apply(at.device, 'profile', m.doc);
      return;
    }
    const now = new Date().toISOString();
    if (at.kind === 'jobResult' && m.doc !== null) {
      this.pendingResults.push({ device: at.device, jobId: at.jobId, receivedAt: now, doc: m.doc });
    } else if (at.kind === 'jobStatus') {
      const st = m.doc as { state?: JobState; error?: { code?: string; message?: string } } | null;
      if (!st?.state || !TERMINAL_STATES.has(st.state)) return;
      this.stats.statuses++;
      this.pendingJobs.push({ device: at.device, jobId: at.jobId, type: 'unknown', state: st.state, errorCode: st.error?.code, errorMessage: st.error?.message, updatedAt: now });
    } else return;
    this.timer ??= setTimeout(() => this.writeBatch(), this.opts.batchMs ?? 100);
  }

  /** Writes what arrived since the last batch in one transaction; the store then writes its file. */
  private writeBatch(): void {
    this.timer = undefined;
    const results = this.pendingResults.splice(0);
    const jobs = this.pendingJobs.splice(0);
    try {
      const added = this.opts.store.recordResults(results.map((r) => ({ ...r, target: this.view.get(r.device)?.target })));
      this.stats.results += added;
      this.stats.duplicates += results.length - added;
      this.opts.store.recordJobs(jobs);
    } catch (e) {
      this.log.error('collector could not write a batch to the results store', { results: results.length, error: errorMessage(e) });
      return;
    }
    this.opts.onBatch?.(this.stats);
  }

  /** Writes the last batch, disconnects (keeping the broker session, so nothing is missed until the next start). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.writeBatch();
    this.link.events.offOwner(this);
    await this.link.stop();
    await this.opts.store.flush();
  }
}
