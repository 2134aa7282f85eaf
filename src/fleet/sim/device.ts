// One SIMULATED device: the agent's own Transport (last will, backoff, persistent session) and JobRunner (job
// parsing, dedup, queueing, timeouts, cancel) around the fake handlers of ./handlers.ts. It publishes what a
// real agent publishes: retained status, profile and deployed; job status and results.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../agent/clock.js';
import { createLogger, type Logger } from '../../agent/log.js';
import { JobRunner } from '../../agent/runner.js';
import { nextSession } from '../../agent/state.js';
import { JobStore } from '../../agent/jobstore.js';
import { baseTopic, jobFilters, topicMatches, topics } from '../../agent/topics.js';
import { Transport, type VersionedDoc } from '../../agent/transport.js';
import { errorMessage } from '../../errors.js';
import type { Target } from '../../types.js';
import type { DeployedDoc } from '../contract.js';
import { simProfile, type SimKind } from './fake.js';
import { simHandlers, type SimBehaviour } from './handlers.js';

export interface SimDeviceOptions {
  url: string;
  fleet: string;
  device: string;
  kind: SimKind;
  behaviour: SimBehaviour;
  /** Where this device keeps its session counter and seen job ids (as a real agent does). */
  stateDir: string;
  target?: Target;
  deployed?: DeployedDoc;
  log?: Logger;
  clock?: Clock;
  reconnect?: { minMs: number; maxMs: number };
}

const silent = createLogger({ level: 'error', json: true, write: () => {} });

export class SimDevice {
  readonly base: string;
  session = 0;
  private transport: Transport | undefined;
  private runner: JobRunner | undefined;
  private crashed = false;
  private stopping: Promise<void> | undefined;
  readonly state: { deployed?: DeployedDoc };
  /** Jobs this device received, by type (for tests and the bench's bookkeeping). */
  readonly received: Record<string, number> = {};

  constructor(private readonly opts: SimDeviceOptions) {
    this.base = baseTopic({ fleet: opts.fleet, deviceId: opts.device });
    this.state = { deployed: opts.deployed };
  }

  get id(): string {
    return this.opts.device;
  }

  get connected(): boolean {
    return Boolean(this.transport?.connected);
  }

  get alive(): boolean {
    return !this.crashed && !this.stopping;
  }

  async start(): Promise<void> {
    const o = this.opts;
    const log = o.log ?? silent;
    await mkdir(o.stateDir, { recursive: true });
    this.session = await nextSession(o.stateDir, log);
    const store = new JobStore(o.stateDir, 1000, log);
    const pending = await store.load();
    const handlers = simHandlers({
      device: o.device, kind: o.kind, behaviour: o.behaviour, target: o.target, clock: o.clock, state: this.state,
      publishDeployed: (doc) => void this.send(`${this.base}/deployed`, doc, 1, true),
      crash: () => void this.crash(),
    });
    this.runner = new JobRunner({
      handlers,
      store,
      log,
      clock: o.clock,
      limits: { maxPayloadBytes: 262144, maxQueuedJobs: 32 },
      settings: { progressIntervalMs: 200 },
      abortGraceMs: 1000,
      sink: {
        // Not awaited: the runner calls this while the incoming job is not yet acknowledged, and MQTT.js handles
        // no incoming packet (our PUBACK included) until it is, so waiting for the broker here would deadlock.
        status: (st, qos) => void this.send(topics.jobStatus(this.base, st.id), st, qos),
        // The real agent persists these in its outbox first; a simulated device keeps them in MQTT.js's queue.
        terminal: async (job, st, result, _reply, commit) => {
          await commit();
          if (result) void this.send(topics.jobResult(this.base, job.id), result, 1);
          void this.send(topics.jobStatus(this.base, st.id), st, 1);
        },
      },
    });
    this.transport = new Transport({
      url: o.url,
      clientId: `edgetune-${o.fleet}-${o.device}`.slice(0, 128),
      keepaliveS: 30,
      protocolVersion: 4,
      reconnect: o.reconnect ?? { minMs: 200, maxMs: 5000 },
      will: () => ({ topic: topics.status(this.base), doc: this.statusDoc('offline') }),
      log,
      clock: o.clock,
      // The job is on disk (JobStore) before the broker gets its PUBACK, as on a real agent.
      onMessage: (topic, payload, packet) => this.onJob(topic, payload, packet.retain),
    });
    this.transport.events.on('connect', () => this.birth(), this);
    for (const f of jobFilters(this.ids())) await this.transport.subscribe(f, 1);
    await this.runner.restore(pending);
    this.transport.start();
  }

  private async onJob(topic: string, payload: Buffer, retained: boolean): Promise<void> {
    if (retained || this.crashed || !jobFilters(this.ids()).some((f) => topicMatches(f, topic))) return;
    try {
      const type = JSON.parse(payload.toString('utf8'))?.type;
      if (typeof type === 'string') this.received[type] = (this.received[type] ?? 0) + 1;
    } catch { /* the runner rejects it */ }
    await this.runner?.receive(payload, topic.slice(topic.lastIndexOf('/') + 1));
  }

  waitConnected(signal?: AbortSignal): Promise<void> {
    if (!this.transport) return Promise.reject(new Error(`sim device ${this.id} not started`));
    return this.transport.waitConnected(signal);
  }

  private ids() {
    return { fleet: this.opts.fleet, deviceId: this.opts.device, groups: [this.opts.kind.target] };
  }

  private statusDoc(state: 'online' | 'offline'): VersionedDoc {
    return { v: 1, state, session: this.session, ts: new Date().toISOString(), version: 'sim', simulated: true };
  }

  private async birth(): Promise<void> {
    const t = this.transport!;
    await t.publish(topics.status(this.base), this.statusDoc('online'), { qos: 1, retain: true });
    await t.publish(topics.profile(this.base), { ...simProfile(this.opts.kind, this.opts.device), simulated: true }, { qos: 1, retain: true });
    if (this.state.deployed) await t.publish(`${this.base}/deployed`, this.state.deployed, { qos: 1, retain: true });
  }

  private send(topic: string, doc: unknown, qos: 0 | 1, retain = false): Promise<void> {
    if (this.crashed || !this.transport) return Promise.resolve();
    return this.transport.publish(topic, doc, { qos, retain }).catch((e) => (this.opts.log ?? silent).warn('sim publish failed', { topic, error: errorMessage(e) }));
  }

  /** The device vanishes mid-work: its running job never answers; the broker shows it offline. */
  async crash(): Promise<void> {
    if (this.crashed) return;
    this.crashed = true;
    // The runner publishes nothing terminal on stop: the job stays on disk as a real crash would leave it.
    await this.runner?.stop('SIMULATED crash');
    await this.transport?.stop({ topic: topics.status(this.base), doc: this.statusDoc('offline') }).catch(() => {});
    this.transport?.events.offOwner(this);
  }

  /** A clean shutdown: the running job is interrupted (kept on disk for the next start), retained offline, disconnect. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.runner?.stop('sim device stopping');
      if (!this.crashed) await this.transport?.stop({ topic: topics.status(this.base), doc: this.statusDoc('offline') });
      this.transport?.events.offOwner(this);
    })();
    return this.stopping;
  }
}

export function simStateDir(root: string, device: string): string {
  return join(root, device);
}
