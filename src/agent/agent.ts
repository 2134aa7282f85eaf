// The composition root: builds the stores (job queue, outbox, models, transfers), the broker (when none is
// configured), the transport, the job runner and the heartbeat once, recovers what a crash left, wires them
// together and owns start/stop. Everything it composes can be used and tested on its own.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import { EdgetuneError, errorMessage } from '../errors.js';
import type { DeviceProfile } from '../types.js';
import type { EmbeddedBroker } from './broker.js';
import { systemClock, type Clock } from './clock.js';
import type { ResolvedConfig } from './config.js';
import { loadPublicKey } from './deploy/signature.js';
import { ModelStore, type DeployedDoc } from './deploy/store.js';
import { TransferStore } from './deploy/transfer.js';
import { realHandlers } from './handlers.js';
import { Heartbeat } from './heartbeat.js';
import type { HandlerMap, JobDoc, JobStatus } from './jobs.js';
import { JobStore, type Reply } from './jobstore.js';
import type { Logger } from './log.js';
import { Outbox, type OutMessage } from './outbox.js';
import { applyPatch, loadRemotePatch, type RemotePatch } from './remote-config.js';
import { JobRunner, type JobSink } from './runner.js';
import { nextSession } from './state.js';
import { baseTopic, jobFilters, topicMatches, topics } from './topics.js';
import { assertPublishTopic, Transport, type VersionedDoc } from './transport.js';
import { runTask, type Work } from './work/worker.js';
import { OwnJobs } from './own-jobs.js';
import { brokerPassword, packageVersion, tlsOptions } from './setup.js';

export interface AgentContext {
  config: ResolvedConfig;
  log: Logger;
  /** Job handlers by type; default: the real ones (profile, compress, bench, tune, deploy, rollback, config). */
  handlers?: HandlerMap;
  /** How the device is profiled at start; default: profileDevice() in a work process. */
  profile?: () => Promise<DeviceProfile>;
  /** The light health probe for the heartbeat; default: healthProbe() of src/profile/health.ts. */
  healthProbe?: () => Promise<import('./heartbeat.js').HealthReading>;
  version?: string;
  clock?: Clock;
  random?: () => number;
  runner?: { progressIntervalMs?: number; abortGraceMs?: number };
  /** Runs heavy work (default: child processes). */
  work?: Work;
}

export class Agent {
  readonly base: string;
  session: number | undefined;
  brokerUrl: string | undefined;
  /** The effective config (file, environment, flags, then remote changes). */
  config: ResolvedConfig;
  private broker: EmbeddedBroker | undefined;
  private transport: Transport | undefined;
  private runner: JobRunner | undefined;
  private outbox: Outbox | undefined;
  private models: ModelStore | undefined;
  private transfers: TransferStore | undefined;
  private heartbeat: Heartbeat | undefined;
  private remote: RemotePatch = {};
  private profileDoc: DeviceProfile | undefined;
  /** The start-up profiling; a job that needs the profile waits for it rather than tune with the default space. */
  private profiling: Promise<void> | undefined;
  private version = '0.0.0';
  private readonly clock: Clock;
  private readonly startedAt: number;
  private readonly ownJobs: OwnJobs;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private resolveStopped!: () => void;
  /** Settles once stop() has finished. */
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  constructor(private readonly ctx: AgentContext) {
    this.base = baseTopic(ctx.config);
    this.clock = ctx.clock ?? systemClock;
    this.config = ctx.config;
    this.startedAt = this.clock.now();
    this.ownJobs = new OwnJobs(ctx.log);
  }

  /** Recovers state, starts the broker (if embedded), the runner and the connection (which continues in the background). */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const { log } = this.ctx;
    const stateDir = this.ctx.config.stateDir;
    await mkdir(stateDir, { recursive: true });
    this.version = this.ctx.version ?? (await packageVersion());
    this.session = await nextSession(stateDir, log);
    this.remote = await loadRemotePatch(stateDir, log);
    const patched = applyPatch(this.ctx.config, this.remote);
    if (patched.ok) this.config = patched.config;
    else log.error('remote config changes no longer fit the config; ignoring them', { issues: patched.issues });
    const config = this.config;

    // Stores, and what a crash left in them.
    const store = new JobStore(stateDir, config.limits.rememberJobIds, log);
    const records = await store.load();
    const outbox = new Outbox({
      dir: join(stateDir, 'outbox'),
      publish: (m) => this.publishOut(m),
      connected: () => Boolean(this.transport?.connected),
      log,
      maxEntries: config.limits.maxOutbox,
    });
    this.outbox = outbox;
    const pending = await outbox.load();
    const ended = new Set(pending.filter((e) => e.tag?.terminal).map((e) => e.tag!.job));
    for (const id of ended) if (store.get(id)) await store.finish(id);
    // Staging files of the jobs that will run again are kept (a download resumes); those of ended jobs go.
    const restored = new Set(records.filter((r) => !ended.has(r.job.id)).map((r) => r.job.id));
    this.models = new ModelStore(stateDir, log, { liveJobs: () => this.runner ? this.liveJobIds() : restored });
    const { rolledBack } = await this.models.load();
    if (rolledBack) log.warn('rolled back an unconfirmed model activation', { model: rolledBack.sha256 });
    this.transfers = new TransferStore(stateDir, {
      maxChunkBytes: config.limits.maxPayloadBytes, maxBytes: config.deploy.maxModelBytes, maxOpen: 4,
    }, log);
    await this.transfers.load();
    const publicKey: KeyObject | undefined = config.deploy.publicKey ? await loadPublicKey(config.deploy.publicKey) : undefined;

    if (config.broker.url) {
      this.brokerUrl = config.broker.url;
    } else {
      const { EmbeddedBroker } = await import('./broker.js');
      this.broker = new EmbeddedBroker({ host: config.broker.host, port: config.broker.port, log });
      const port = await this.broker.start();
      this.brokerUrl = this.broker.url;
      log.info(`no broker configured: started embedded MQTT broker on ${config.broker.host}:${port}`, { port });
    }

    const graceMs = this.ctx.runner?.abortGraceMs ?? config.jobs.abortGraceS * 1000;
    const handlers = this.ctx.handlers ?? realHandlers({
      stateDir,
      deviceId: config.deviceId,
      log,
      profile: async () => {
        await this.profiling;
        return this.profileDoc;
      },
      work: this.ctx.work,
      graceMs,
      deploy: { store: this.models, transfers: this.transfers, config: config.deploy, publicKey, onDeployed: (d) => this.publishDeployed(d), now: () => new Date(this.clock.now()) },
      config: { stateDir, base: () => this.ctx.config, current: () => this.remote, apply: (c, p) => this.applyConfig(c, p) },
    });
    this.runner = new JobRunner({
      handlers,
      sink: this.sink(),
      store,
      log,
      clock: this.clock,
      limits: config.limits,
      settings: { progressIntervalMs: this.ctx.runner?.progressIntervalMs ?? config.jobs.progressIntervalMs, defaultTimeoutS: config.jobs.defaultTimeoutS },
      maxAttempts: config.jobs.maxAttempts,
      abortGraceMs: graceMs,
    });

    const b = config.broker;
    this.transport = new Transport({
      url: this.brokerUrl!,
      clientId: (b.clientId ?? `edgetune-${config.fleet}-${config.deviceId}`).slice(0, 128),
      username: b.username,
      password: await brokerPassword(b),
      keepaliveS: b.keepaliveS,
      protocolVersion: b.protocolVersion,
      reconnect: b.reconnect,
      connectTimeoutMs: b.connectTimeoutS * 1000,
      tls: await tlsOptions(b.tls),
      maximumPacketBytes: config.limits.maxPayloadBytes + 4096,
      will: () => ({ topic: topics.status(this.base), doc: this.statusDoc('offline') }),
      onMessage: (topic, payload, packet) => this.onMessage(topic, payload, packet),
      log,
      clock: this.clock,
      random: this.ctx.random,
    });
    this.heartbeat = new Heartbeat({
      settings: config.heartbeat,
      probe: this.ctx.healthProbe ?? (async () => (await import('../profile/health.js')).healthProbe()),
      facts: () => this.facts(),
      publish: (doc) => this.requireTransport().publish(topics.health(this.base), doc, { qos: 1, retain: true }),
      clock: this.clock,
      log,
    });
    this.transport.events.on('connect', () => this.birth(), this);
    for (const f of this.filters()) await this.transport.subscribe(f, 1);
    await this.runner.restore(records.filter((r) => !ended.has(r.job.id)));
    this.transport.start();
    this.heartbeat.start();
    log.info('agent started', { base: this.base, session: this.session, broker: this.brokerUrl, version: this.version });
    this.profiling = this.takeProfile();
  }

  private liveJobIds(): string[] {
    const snap = this.runner!.snapshot();
    return [...(snap.running ? [snap.running.id] : []), ...snap.light, ...snap.queued];
  }

  waitConnected(signal?: AbortSignal): Promise<void> {
    if (!this.transport) return Promise.reject(new Error('agent not started'));
    return this.transport.waitConnected(signal);
  }

  /** Resolves when every outgoing message has been acknowledged by the broker. */
  drained(): Promise<void> {
    return this.outbox?.drained() ?? Promise.resolve();
  }

  /**
   * Publishes a job to this device's own job topic, the same path a controller's job takes, and resolves with
   * its terminal status and result as they come back through the broker.
   */
  submitOwnJob(job: JobDoc, signal?: AbortSignal): Promise<{ status: JobStatus; result?: unknown }> {
    return this.ownJobs.submit(this.requireTransport(), this.base, job, signal);
  }

  /**
   * Stops cleanly: the running job is interrupted (it runs again at the next start), outgoing messages get a
   * moment to drain, retained offline is published, the connection closed. Idempotent.
   */
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
    this.heartbeat?.stop();
    if (this.runner) await step('interrupting jobs', () => this.runner!.stop(reason));
    if (this.outbox) {
      const outbox = this.outbox;
      // What is not acknowledged within a moment stays on disk for the next start.
      if (this.transport?.connected) await step('flushing the outbox', () => Promise.race([outbox.drained(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
      await step('closing the outbox', () => outbox.stop());
    }
    if (this.transport) {
      await step('disconnecting', () => this.transport!.stop({ topic: topics.status(this.base), doc: this.statusDoc('offline') }));
      this.transport.events.offOwner(this);
    }
    if (this.broker) await step('stopping the embedded broker', () => this.broker!.stop());
    log.info('agent stopped');
  }

  /** The runner's output: every QoS 1 message through the outbox, progress straight out. */
  private sink(): JobSink {
    return {
      status: async (s, qos) => {
        if (qos === 0) {
          this.transport?.publish(topics.jobStatus(this.base, s.id), s, { qos: 0 }).catch(() => {});
          return;
        }
        await this.outbox!.add([{ topic: topics.jobStatus(this.base, s.id), doc: s as unknown as VersionedDoc }]);
        this.heartbeat?.poke();
      },
      terminal: async (job, s, result, reply, commit) => {
        const msgs: OutMessage[] = [];
        if (result) msgs.push({ topic: topics.jobResult(this.base, job.id), doc: result });
        msgs.push({ topic: topics.jobStatus(this.base, job.id), doc: s as unknown as VersionedDoc });
        if (reply) {
          const envelope = { v: 1, id: s.id, state: s.state, data: result ?? null, ...(s.error ? { error: s.error } : {}) };
          msgs.push({ topic: reply.topic, doc: envelope, ...(reply.correlationData ? { correlationData: reply.correlationData.toString('base64') } : {}) });
        }
        const seq = await this.outbox!.add(msgs, { tag: { job: job.id, terminal: true }, hold: true });
        await commit();
        this.outbox!.release(seq);
        this.heartbeat?.poke();
        if (job.type === 'profile' && result && s.state === 'SUCCEEDED') {
          // A fresh profile is also the device's retained profile.
          this.profileDoc = result as unknown as DeviceProfile;
          this.transport?.publish(topics.profile(this.base), result, { qos: 1, retain: true }).catch(() => {});
        }
      },
    };
  }

  private publishOut(m: OutMessage): Promise<void> {
    const properties = m.correlationData !== undefined ? { correlationData: Buffer.from(m.correlationData, 'base64') } : undefined;
    return this.requireTransport().publish(m.topic, m.doc, { qos: 1, retain: m.retain ?? false, properties });
  }

  private filters(config = this.config): string[] {
    return [...jobFilters(config), `${this.base}/transfer/+/+`];
  }

  /** A `config` job changed the config: apply what can change while running. */
  private async applyConfig(config: ResolvedConfig, patch: RemotePatch): Promise<void> {
    const before = this.filters();
    this.config = config;
    this.remote = patch;
    const after = this.filters();
    const t = this.requireTransport();
    for (const f of before) if (!after.includes(f)) await t.unsubscribe(f);
    for (const f of after) if (!before.includes(f)) await t.subscribe(f, 1);
    this.heartbeat?.configure(config.heartbeat);
    this.runner?.configure({ progressIntervalMs: config.jobs.progressIntervalMs, defaultTimeoutS: config.jobs.defaultTimeoutS });
    this.ctx.log.info('config changed by a config job', { remote: patch });
  }

  private statusDoc(state: 'online' | 'offline'): VersionedDoc {
    return { v: 1, state, session: this.session, ts: new Date(this.clock.now()).toISOString(), version: this.version };
  }

  private facts() {
    const snap = this.runner?.snapshot();
    return {
      session: this.session,
      ...(snap?.running ? { job: snap.running } : {}),
      queued: snap?.queued.length ?? 0,
      outbox: this.outbox?.size ?? 0,
      rssMB: Math.round(process.memoryUsage.rss() / 1048576),
      uptimeS: Math.round((this.clock.now() - this.startedAt) / 1000),
    };
  }

  /** On every connect: retained state again (a restarted broker has lost it), then what the outbox holds. */
  private async birth(): Promise<void> {
    const t = this.requireTransport();
    await t.publish(topics.status(this.base), this.statusDoc('online'), { qos: 1, retain: true });
    if (this.profileDoc) await t.publish(topics.profile(this.base), this.profileDoc, { qos: 1, retain: true });
    const deployed = this.models?.deployedDoc();
    if (deployed) await t.publish(topics.deployed(this.base), deployed, { qos: 1, retain: true });
    this.outbox?.pump();
    await this.heartbeat?.publishNow();
  }

  private publishDeployed(doc: DeployedDoc | undefined): void {
    if (!doc || !this.transport) return;
    this.transport.publish(topics.deployed(this.base), doc, { qos: 1, retain: true }).catch((e) => this.ctx.log.warn('publishing deployed failed', { error: errorMessage(e) }));
  }

  /** Profiling takes seconds; the agent is online meanwhile and publishes the profile when it has one. */
  private async takeProfile(): Promise<void> {
    try {
      this.profileDoc = await (this.ctx.profile ?? (() => (this.ctx.work ?? runTask)<DeviceProfile>('profile', { stateDir: this.config.stateDir })))();
      if (this.transport?.connected) await this.transport.publish(topics.profile(this.base), this.profileDoc, { qos: 1, retain: true });
    } catch (e) {
      // The agent still takes jobs; the controller just sees no retained profile.
      this.ctx.log.warn('device profiling failed; no profile will be published', { error: errorMessage(e) });
    }
  }

  private async onMessage(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    // Also while stopping: the runner records a job that arrives now, to run at the next start, rather than let the
    // acknowledged message vanish.
    if (jobFilters(this.config).some((f) => topicMatches(f, topic))) {
      if (packet.retain) {
        // A retained job would re-run on every reconnect of every device; refuse to treat it as a request.
        this.ctx.log.warn('ignoring a retained message on a job topic; publish jobs without the retain flag', { topic });
        return;
      }
      const id = topic.slice(topic.lastIndexOf('/') + 1);
      await this.runner?.receive(payload, id, this.replyOf(packet, topic));
      return;
    }
    const chunk = /\/transfer\/([^/]+)\/([^/]+)$/.exec(topic);
    if (chunk && topic.startsWith(`${this.base}/transfer/`)) {
      await this.transfers?.put(chunk[1], chunk[2], payload);
      return;
    }
    this.ownJobs.onMessage(topic, payload);
  }

  /** MQTT 5 request/response: where the requester wants the answer, if that is a topic we may publish to. */
  private replyOf(packet: IPublishPacket, topic: string): Reply | undefined {
    const props = packet.properties;
    if (!props?.responseTopic) return undefined;
    try {
      assertPublishTopic(props.responseTopic);
      if (props.responseTopic.length > 512) throw new TypeError('response topic longer than 512 characters');
    } catch (e) {
      this.ctx.log.warn('ignoring an unusable MQTT 5 response topic; the job still runs', { topic, error: errorMessage(e) });
      return undefined;
    }
    return { topic: props.responseTopic, ...(props.correlationData ? { correlationData: Buffer.from(props.correlationData) } : {}) };
  }

  private requireTransport(): Transport {
    if (!this.transport) throw new EdgetuneError('USAGE', 'agent not started: call start() first');
    return this.transport;
  }
}
