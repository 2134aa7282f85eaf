// The controller's composition root: one MQTT link, the fleet view fed by retained state, the job tracker fed
// by job replies, and (optionally) the results store that records every finished device job. Built once per
// command; start() connects and waits for the retained state to arrive, stop() undoes everything.
import { systemClock, type Clock } from '../agent/clock.js';
import { TypedEvents } from '../agent/events.js';
import type { Logger } from '../agent/log.js';
import { errorMessage } from '../errors.js';
import type { Target } from '../types.js';
import type { TlsMaterial } from './broker-auth.js';
import { FleetLink, quietLogger, type FleetMessage } from './link.js';
import { newRunId } from './select.js';
import type { ResultsStore } from './store/results.js';
import { RETAINED_KINDS, fleetTopics, type RetainedKind } from './topics.js';
import { JobTracker, type TrackedJob } from './tracker.js';
import { FleetView, targetMatcher, type DeviceRecord } from './view.js';

export type SessionEvents = { device: [record: DeviceRecord, kind: RetainedKind] };

export interface FleetSessionOptions {
  url: string;
  fleet: string;
  username?: string;
  password?: string;
  tls?: TlsMaterial;
  protocolVersion?: 4 | 5;
  /** Unique per running controller: two clients with one id take the connection from each other. */
  clientId?: string;
  log?: Logger;
  /** Target files to match device profiles against; without them devices have no target. */
  targets?: Target[];
  store?: ResultsStore;
  clock?: Clock;
  /** Quiet time after the last retained message before the fleet is taken as known. */
  settleMs?: number;
  graceS?: number;
  /** Follow job replies (status/result) of this fleet; off for `fleet devices`. */
  followJobs?: boolean;
}

export class FleetSession {
  readonly link: FleetLink;
  readonly view: FleetView;
  readonly tracker: JobTracker;
  /** A device's retained state changed (e.g. it went offline). */
  readonly events: TypedEvents<SessionEvents>;
  readonly log: Logger;
  readonly clock: Clock;
  private lastRetainedAt = 0;
  private started = false;

  constructor(readonly opts: FleetSessionOptions) {
    this.log = opts.log ?? quietLogger();
    this.clock = opts.clock ?? systemClock;
    this.events = new TypedEvents((ev, e) => this.log.error(`fleet session ${ev} listener failed`, { error: errorMessage(e) }));
    this.view = new FleetView(opts.targets ? targetMatcher(opts.targets) : undefined);
    this.tracker = new JobTracker({ clock: this.clock, graceS: opts.graceS });
    this.link = new FleetLink({
      url: opts.url, fleet: opts.fleet, clientId: opts.clientId ?? `edgetune-ctl-${opts.fleet}-${newRunId('')}`,
      username: opts.username, password: opts.password, tls: opts.tls, protocolVersion: opts.protocolVersion, log: this.log,
    });
  }

  get fleet(): string {
    return this.opts.fleet;
  }

  get store(): ResultsStore | undefined {
    return this.opts.store;
  }

  /** Connects, subscribes to the fleet's retained state (and job replies) and waits until the retained burst is over. */
  async start(ctx: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    this.started = true;
    this.link.events.on('message', (m) => this.onMessage(m), this);
    this.tracker.events.on('change', (t, what) => { if (what === 'done') this.record(t); }, this);
    for (const k of RETAINED_KINDS) await this.link.subscribe(fleetTopics.retained(this.fleet, k), 1);
    if (this.opts.followJobs !== false) await this.link.subscribe(fleetTopics.jobReplies(this.fleet), 1);
    await this.link.start(ctx);
    this.lastRetainedAt = this.clock.now();
    await this.settle(ctx.signal);
  }

  /** Waits until no retained message arrived for settleMs (at most 10 s: a busy fleet never goes fully quiet). */
  private async settle(signal?: AbortSignal): Promise<void> {
    const settleMs = this.opts.settleMs ?? 400;
    const until = this.clock.now() + 10_000;
    while (this.clock.now() - this.lastRetainedAt < settleMs && this.clock.now() < until) {
      if (signal?.aborted) return;
      await new Promise<void>((r) => this.clock.setTimeout(r, Math.max(10, settleMs - (this.clock.now() - this.lastRetainedAt))));
    }
  }

  private onMessage(m: FleetMessage): void {
    const kind = m.at.kind;
    if (kind === 'jobStatus' || kind === 'jobResult') {
      this.tracker.onMessage(m);
      return;
    }
    if (m.retained) this.lastRetainedAt = this.clock.now();
    if (this.view.apply(m.at.device, kind, m.doc)) this.events.emit('device', this.view.get(m.at.device)!, kind);
  }

  /** Every finished device job goes to the store, with its result when there is one. */
  private record(t: TrackedJob): void {
    const store = this.opts.store;
    if (!store) return;
    const tags = t.tags;
    const at = new Date(t.finishedAt ?? this.clock.now()).toISOString();
    try {
      store.recordJobs([{ device: t.device, jobId: t.jobId, type: t.type, state: t.verdict ?? t.state, errorCode: t.error?.code, errorMessage: t.error?.message, updatedAt: at, ...tags }]);
      if (t.result !== undefined) {
        store.recordResults([{ device: t.device, jobId: t.jobId, runId: tags.runId, type: t.type, target: this.view.get(t.device)?.target, receivedAt: at, doc: t.result }]);
      }
    } catch (e) {
      this.log.error('could not record a device job in the results store', { device: t.device, job: t.jobId, error: errorMessage(e) });
    }
  }

  /** Disconnects (dropping the broker session: its replies are no longer wanted) and flushes the store. */
  async stop(): Promise<void> {
    this.link.events.offOwner(this);
    this.tracker.events.offOwner(this);
    if (this.started) await this.link.stop({ discardSession: true });
    await this.opts.store?.flush();
  }
}
