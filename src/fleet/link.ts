// The controller's MQTT connection. It is the agent's Transport (reconnect with backoff and jitter,
// subscriptions restored on every connect, a persistent session whose queued QoS 1 replies survive a broker
// restart), plus parsing of fleet topics and a way to drop the persistent session when the controller is done.
import { connectAsync } from 'mqtt';
import { Transport, type PublishOptions } from '../agent/transport.js';
import { TypedEvents } from '../agent/events.js';
import { createLogger, type Logger } from '../agent/log.js';
import type { JobDoc } from '../agent/jobs.js';
import { CanceledError, EdgetuneError, errorMessage } from '../errors.js';
import { fatalConnectError, type TlsMaterial } from './broker-auth.js';
import { fleetTopics, parseFleetTopic, type FleetTopic } from './topics.js';

export interface FleetMessage {
  topic: string;
  at: FleetTopic;
  /** The parsed JSON payload; null for an empty payload (a cleared retained message). */
  doc: unknown;
  retained: boolean;
}

export interface LinkOptions {
  url: string;
  fleet: string;
  /** Stable per controller role: the broker keeps this client's session (and queues its replies) across outages. */
  clientId: string;
  username?: string;
  password?: string;
  /** CA, client certificate and key (PEM contents) for mqtts://, as the agent takes them from broker.tls. */
  tls?: TlsMaterial;
  protocolVersion?: 4 | 5;
  keepaliveS?: number;
  reconnect?: { minMs: number; maxMs: number };
  log?: Logger;
}

export type LinkEvents = { message: [FleetMessage]; connect: []; disconnect: [] };

/**
 * The controller's logger: warnings and errors on stderr (stdout is the user's table), each distinct one once, so a
 * broker that is down for a while gives one line, not one per reconnect attempt.
 */
export function quietLogger(): Logger {
  const seen = new Set<string>();
  const inner = createLogger({ level: 'warn', json: false, write: (l) => process.stderr.write(l + '\n') });
  const once = (level: 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
    const key = `${level}|${msg}|${String(fields?.error ?? '')}`;
    if (seen.has(key)) return;
    seen.add(key);
    inner[level](msg, fields);
  };
  return { debug: () => {}, info: () => {}, warn: once('warn'), error: once('error') };
}

export class FleetLink {
  readonly events: TypedEvents<LinkEvents>;
  private readonly transport: Transport;
  private readonly log: Logger;
  private started = false;
  private everConnected = false;

  constructor(private readonly opts: LinkOptions) {
    this.log = opts.log ?? quietLogger();
    this.events = new TypedEvents((ev, e) => this.log.error(`fleet link ${ev} listener failed`, { error: errorMessage(e) }));
    this.transport = new Transport({
      url: opts.url,
      clientId: opts.clientId.slice(0, 128),
      username: opts.username,
      password: opts.password,
      ...(opts.tls ? { tls: opts.tls } : {}),
      keepaliveS: opts.keepaliveS ?? 30,
      protocolVersion: opts.protocolVersion ?? 4,
      reconnect: opts.reconnect ?? { minMs: 200, maxMs: 5000 },
      log: this.log,
      // MQTT 5: a controller that dies leaves a session (and a queue) behind for an hour, not forever.
      sessionExpiryS: 3600,
    });
    this.transport.events.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain), this);
    this.transport.events.on('connect', () => {
      this.everConnected = true;
      this.events.emit('connect');
    }, this);
    this.transport.events.on('disconnect', () => this.events.emit('disconnect'), this);
  }

  get fleet(): string {
    return this.opts.fleet;
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /** Subscribes now when connected, else at connect; restored after every reconnect. */
  subscribe(filter: string, qos: 0 | 1 = 1): Promise<void> {
    return this.transport.subscribe(filter, qos);
  }

  unsubscribe(filter: string): Promise<void> {
    return this.transport.unsubscribe(filter);
  }

  /** Connects and resolves once every filter subscribed so far is active. */
  async start(opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    // An untrusted certificate or a refused login fails the same way on every retry: give up at once, saying why.
    const fatal = new AbortController();
    let lastError: string | undefined;
    const off = this.transport.events.on('error', (e) => {
      lastError = errorMessage(e);
      const f = this.everConnected ? undefined : fatalConnectError(e, this.opts.url);
      if (f) fatal.abort(f);
    });
    if (!this.started) {
      this.started = true;
      this.transport.start();
    }
    try {
      await this.transport.waitConnected(AbortSignal.any([timeout, fatal.signal, ...(opts.signal ? [opts.signal] : [])]));
    } catch (e) {
      if (opts.signal?.aborted) throw new CanceledError('connecting to the MQTT broker');
      if (fatal.signal.aborted) throw fatal.signal.reason;
      if (!timeout.aborted) throw e;
      throw new EdgetuneError('CONFIG_INVALID', `could not connect to the MQTT broker ${this.opts.url} within ${timeoutMs / 1000} s${lastError ? ` (last error: ${lastError})` : ''}; check --broker (EDGETUNE_BROKER_URL) and that the broker is running`);
    } finally {
      off();
    }
  }

  publish(topic: string, doc: unknown, opts: PublishOptions = { qos: 1 }): Promise<void> {
    return this.transport.publish(topic, doc, opts);
  }

  /** Sends a job to one device's own job topic (QoS 1, not retained: a retained job would re-run on reconnect). */
  publishJob(device: string, job: JobDoc): Promise<void> {
    return this.transport.publish(fleetTopics.deviceJob(this.opts.fleet, device, job.id), job, { qos: 1 });
  }

  /** One chunk of a model transfer to one device: raw bytes on `{base}/transfer/{id}/{index}` (src/agent/deploy/transfer.ts). */
  publishChunk(device: string, transferId: string, index: number, payload: Buffer): Promise<void> {
    return this.transport.publishBytes(fleetTopics.transferChunk(this.opts.fleet, device, transferId, index), payload);
  }

  /**
   * Disconnects. With `discardSession`, reconnects once with a clean session so the broker forgets this
   * client's subscriptions and stops queueing for it (a finished command should not leave a queue behind).
   */
  async stop(opts: { discardSession?: boolean } = {}): Promise<void> {
    this.transport.events.offOwner(this);
    if (!this.started) return;
    await this.transport.stop();
    if (opts.discardSession && this.everConnected) {
      try {
        const c = await connectAsync(this.opts.url, {
          clientId: this.opts.clientId.slice(0, 128),
          clean: true,
          reconnectPeriod: 0,
          connectTimeout: 5000,
          protocolVersion: this.opts.protocolVersion ?? 4,
          username: this.opts.username,
          password: this.opts.password,
          ...(this.opts.tls ?? {}),
        });
        await c.endAsync();
      } catch (e) {
        this.log.warn('could not discard the controller session on the broker; it expires by the broker\'s own rules', { error: errorMessage(e) });
      }
    }
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    const at = parseFleetTopic(this.opts.fleet, topic);
    if (!at) return;
    let doc: unknown = null;
    if (payload.length) {
      try {
        doc = JSON.parse(payload.toString('utf8'));
      } catch (e) {
        this.log.warn('ignoring a message that is not JSON', { topic, error: errorMessage(e) });
        return;
      }
    }
    this.events.emit('message', { topic, at, doc, retained });
  }
}
