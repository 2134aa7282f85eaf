// The composition root: builds the broker (when none is configured), the transport and the job runner once,
// wires them together, and owns start/stop. Everything it composes can be used and tested on its own.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IPublishPacket } from 'mqtt';
import { CanceledError, EdgetuneError, errorMessage } from '../errors.js';
import type { DeviceProfile } from '../types.js';
import { packageRoot } from '../util/paths.js';
import { EmbeddedBroker } from './broker.js';
import { systemClock, type Clock } from './clock.js';
import type { ResolvedConfig } from './config.js';
import { realHandlers } from './handlers.js';
import { TERMINAL_STATES, type HandlerMap, type JobDoc, type JobStatus } from './jobs.js';
import type { Logger } from './log.js';
import { JobRunner } from './runner.js';
import { nextSession, SeenJobs } from './state.js';
import { baseTopic, jobFilters, topicMatches, topics } from './topics.js';
import { Transport, type VersionedDoc } from './transport.js';

export interface AgentContext {
  config: ResolvedConfig;
  log: Logger;
  /** Job handlers by type; default: the real `profile` and `tune`. */
  handlers?: HandlerMap;
  /** How the device is profiled at start; default: profileDevice(). */
  profile?: () => Promise<DeviceProfile>;
  version?: string;
  clock?: Clock;
  random?: () => number;
  runner?: { progressIntervalMs?: number; abortGraceMs?: number };
}

/** MQTT 5 request/response: where a controller asked for the answer. */
interface Reply {
  topic: string;
  correlationData?: Buffer;
}

type JobWatcher = { status?: JobStatus; result?: unknown; onChange: () => void };

export class Agent {
  readonly base: string;
  session: number | undefined;
  brokerUrl: string | undefined;
  private broker: EmbeddedBroker | undefined;
  private transport: Transport | undefined;
  private runner: JobRunner | undefined;
  private profileDoc: DeviceProfile | undefined;
  private version = '0.0.0';
  private readonly clock: Clock;
  private readonly watchers = new Map<string, JobWatcher>();
  private readonly pendingReplies = new Map<string, unknown>();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private resolveStopped!: () => void;
  /** Settles once stop() has finished. */
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  constructor(private readonly ctx: AgentContext) {
    this.base = baseTopic(ctx.config);
    this.clock = ctx.clock ?? systemClock;
  }

  /** Starts the broker (if embedded), the runner and the connection. Connecting continues in the background. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const { config, log } = this.ctx;
    await mkdir(config.stateDir, { recursive: true });
    this.version = this.ctx.version ?? (await packageVersion());
    this.session = await nextSession(config.stateDir, log);
    const seen = new SeenJobs(config.stateDir, config.limits.rememberJobIds, log);
    await seen.load();

    if (config.broker.url) {
      this.brokerUrl = config.broker.url;
    } else {
      this.broker = new EmbeddedBroker({ host: config.broker.host, port: config.broker.port, log });
      const port = await this.broker.start();
      this.brokerUrl = this.broker.url;
      log.info(`no broker configured: started embedded MQTT broker on ${config.broker.host}:${port}`, { port });
    }

    try {
      this.profileDoc = await (this.ctx.profile ?? defaultProfile)();
    } catch (e) {
      // The agent still takes jobs; the controller just sees no retained profile.
      log.warn('device profiling failed; no profile will be published', { error: errorMessage(e) });
    }

    const handlers = this.ctx.handlers ?? realHandlers({
      stateDir: config.stateDir,
      deviceId: config.deviceId,
      log,
      profile: async () => this.profileDoc,
    });
    this.runner = new JobRunner({
      handlers,
      sink: { status: (st, qos, meta) => this.publishJobStatus(st, qos, meta), result: (job, doc, meta) => this.publishJobResult(job, doc, meta) },
      seen,
      log,
      clock: this.clock,
      limits: config.limits,
      ...this.ctx.runner,
    });

    const b = config.broker;
    this.transport = new Transport({
      url: this.brokerUrl!,
      clientId: `edgetune-${config.fleet}-${config.deviceId}`.slice(0, 128),
      username: b.username,
      password: b.password,
      keepaliveS: b.keepaliveS,
      protocolVersion: b.protocolVersion,
      reconnect: b.reconnect,
      will: () => ({ topic: topics.status(this.base), doc: this.statusDoc('offline') }),
      log,
      clock: this.clock,
      random: this.ctx.random,
    });
    this.transport.events.on('connect', () => this.birth(), this);
    this.transport.events.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet), this);
    for (const f of jobFilters(config)) await this.transport.subscribe(f, 1);
    this.transport.start();
    log.info('agent started', { base: this.base, session: this.session, broker: this.brokerUrl, version: this.version });
  }

  waitConnected(signal?: AbortSignal): Promise<void> {
    if (!this.transport) return Promise.reject(new Error('agent not started'));
    return this.transport.waitConnected(signal);
  }

  /**
   * Publishes a job to this device's own job topic, the same path a controller's job takes, and resolves with
   * its terminal status and result as they come back through the broker.
   */
  async submitOwnJob(job: JobDoc, signal?: AbortSignal): Promise<{ status: JobStatus; result?: unknown }> {
    const t = this.requireTransport();
    const filter = `${topics.job(this.base, job.id)}/+`;
    const watcher: JobWatcher = { onChange: () => {} };
    this.watchers.set(job.id, watcher);
    try {
      await t.subscribe(filter, 1);
      const done = new Promise<{ status: JobStatus; result?: unknown }>((resolve, reject) => {
        const onAbort = () => reject(new CanceledError(`waiting for job ${job.id}`));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        watcher.onChange = () => {
          const s = watcher.status;
          // The result is published before SUCCEEDED; wait for both.
          if (s && TERMINAL_STATES.has(s.state) && (s.state !== 'SUCCEEDED' || watcher.result !== undefined)) {
            signal?.removeEventListener('abort', onAbort);
            resolve({ status: s, result: watcher.result });
          }
        };
      });
      await t.publish(topics.job(this.base, job.id), job, { qos: 1 });
      return await done;
    } finally {
      this.watchers.delete(job.id);
      await t.unsubscribe(filter).catch(() => {});
    }
  }

  /** Stops cleanly: cancels jobs, publishes retained offline, disconnects, stops the embedded broker. Idempotent. */
  stop(reason = 'agent stopping'): Promise<void> {
    this.stopping ??= this.doStop(reason).finally(() => this.resolveStopped());
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    const { log } = this.ctx;
    // A signal during start: let start finish (it is short) so that everything it built gets stopped.
    await this.starting?.catch(() => {});
    log.info('agent stopping', { reason });
    const step = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        log.error(`${what} failed during stop`, { error: errorMessage(e) });
      }
    };
    if (this.runner) await step('canceling jobs', () => this.runner!.stop(reason));
    if (this.transport) {
      await step('disconnecting', () => this.transport!.stop({ topic: topics.status(this.base), doc: this.statusDoc('offline') }));
      this.transport.events.offOwner(this);
    }
    if (this.broker) await step('stopping the embedded broker', () => this.broker!.stop());
    log.info('agent stopped');
  }

  // The runner's output goes out over MQTT. Failures are logged; MQTT.js queues QoS 1 while offline.
  private publishJobStatus(s: JobStatus, qos: 0 | 1, meta: unknown): void {
    this.send(topics.jobStatus(this.base, s.id), s, qos);
    const reply = meta as Reply | undefined;
    if (reply?.topic && TERMINAL_STATES.has(s.state)) {
      const data = this.pendingReplies.get(s.id) ?? null;
      this.pendingReplies.delete(s.id);
      const envelope = { v: 1, id: s.id, state: s.state, data, ...(s.error ? { error: s.error } : {}) };
      this.send(reply.topic, envelope, 1, reply.correlationData ? { correlationData: reply.correlationData } : undefined);
    }
  }

  private publishJobResult(job: JobDoc, doc: VersionedDoc, meta: unknown): void {
    this.send(topics.jobResult(this.base, job.id), doc, 1);
    if ((meta as Reply | undefined)?.topic) this.pendingReplies.set(job.id, doc);
    if (job.type === 'profile') {
      // A fresh profile is also the device's retained profile.
      this.profileDoc = doc as unknown as DeviceProfile;
      this.send(topics.profile(this.base), doc, 1, undefined, true);
    }
  }

  private send(topic: string, doc: unknown, qos: 0 | 1, properties?: { correlationData?: Buffer }, retain = false): void {
    const t = this.transport;
    if (!t) return;
    t.publish(topic, doc, { qos, retain, properties }).catch((e) => this.ctx.log.warn('publish failed', { topic, error: errorMessage(e) }));
  }

  private statusDoc(state: 'online' | 'offline'): VersionedDoc {
    return { v: 1, state, session: this.session, ts: new Date(this.clock.now()).toISOString(), version: this.version };
  }

  /** On every connect: retained online and profile again (a restarted broker has lost them). */
  private async birth(): Promise<void> {
    const t = this.requireTransport();
    await t.publish(topics.status(this.base), this.statusDoc('online'), { qos: 1, retain: true });
    if (this.profileDoc) await t.publish(topics.profile(this.base), this.profileDoc, { qos: 1, retain: true });
  }

  private async onMessage(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    const filters = jobFilters(this.ctx.config);
    if (filters.some((f) => topicMatches(f, topic))) {
      if (packet.retain) {
        // A retained job would re-run on every reconnect of every device; refuse to treat it as a request.
        this.ctx.log.warn('ignoring a retained message on a job topic; publish jobs without the retain flag', { topic });
        return;
      }
      const id = topic.slice(topic.lastIndexOf('/') + 1);
      const props = packet.properties;
      const reply: Reply | undefined = props?.responseTopic
        ? { topic: props.responseTopic, correlationData: props.correlationData }
        : undefined;
      await this.runner?.receive(payload, id, reply);
      return;
    }
    const m = /\/jobs\/([^/]+)\/(status|result)$/.exec(topic);
    const watcher = m && this.watchers.get(m[1]);
    if (!m || !watcher) return;
    try {
      const doc = JSON.parse(payload.toString('utf8'));
      if (m[2] === 'status') {
        // QoS 0 progress can overtake; keep the newest by seq.
        if (!watcher.status || doc.seq > watcher.status.seq) watcher.status = doc as JobStatus;
      } else watcher.result = doc;
      watcher.onChange();
    } catch (e) {
      this.ctx.log.warn('unreadable message on a watched job topic', { topic, error: errorMessage(e) });
    }
  }

  private requireTransport(): Transport {
    if (!this.transport) throw new EdgetuneError('USAGE', 'agent not started: call start() first');
    return this.transport;
  }
}

async function defaultProfile(): Promise<DeviceProfile> {
  const { profileDevice } = await import('../profile/index.js');
  return profileDevice();
}

async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}
