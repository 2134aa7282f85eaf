// The agent's MQTT connection: last will, reconnect with exponential backoff and jitter on our own timer,
// subscriptions restored on every connect, and a publish that only takes versioned JSON to concrete topics.
import { connect, type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { systemClock, type Clock } from './clock.js';
import { TypedEvents } from './events.js';
import type { Logger } from './log.js';
import { errorMessage } from '../errors.js';

export interface VersionedDoc {
  v: number;
  [key: string]: unknown;
}

export interface TransportOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  keepaliveS: number;
  protocolVersion: 4 | 5;
  reconnect: { minMs: number; maxMs: number };
  /** The last will; called before every (re)connect so its timestamp is current. Published retained, QoS 1. */
  will?: () => { topic: string; doc: VersionedDoc };
  log: Logger;
  clock?: Clock;
  /** 0..1; the jitter source (tests pass a fixed one). */
  random?: () => number;
  connectTimeoutMs?: number;
  /** TLS material for mqtts:// (mutual TLS when cert and key are given). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean; servername?: string };
  /**
   * Handles every incoming message before it is acknowledged: a QoS 1 message gets its PUBACK only once the
   * returned promise settles, so what the handler persisted is never lost to a crash (the broker redelivers).
   * The 'message' event still fires for other listeners.
   */
  onMessage?: (topic: string, payload: Buffer, packet: IPublishPacket) => Promise<unknown>;
  /** MQTT 5: how long the broker keeps the session after a disconnect (MQTT 5 drops it at once by default). */
  sessionExpiryS?: number;
  /** MQTT 5: the largest packet the broker may send us. */
  maximumPacketBytes?: number;
}

export interface PublishOptions {
  qos: 0 | 1;
  retain?: boolean;
  properties?: IClientPublishOptions['properties'];
}

export type TransportEvents = {
  /** Every successful (re)connect, after subscriptions are restored. */
  connect: [];
  disconnect: [reason: string];
  message: [topic: string, payload: Buffer, packet: IPublishPacket];
  /** A connection or protocol error (also logged); the transport keeps retrying, listeners may decide to give up. */
  error: [error: Error];
};

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from minMs, capped at maxMs, with "equal
 * jitter" (half fixed, half random) so a fleet that lost its broker does not reconnect in lock step.
 */
export function backoffDelay(attempt: number, range: { minMs: number; maxMs: number }, random: () => number): number {
  const cap = Math.min(range.maxMs, range.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (cap / 2) * random());
}

/** Refuses topics a device must never publish to: wildcards, empty levels, or system topics. */
export function assertPublishTopic(topic: string): void {
  if (!topic || /[+#]/.test(topic) || topic.startsWith('$') || topic.split('/').some((l) => l === '')) {
    throw new TypeError(`refusing to publish to topic '${topic}': publish topics must be concrete (no +, #, $ or empty levels)`);
  }
}

/** Every payload is a JSON object with a numeric `v`; anything else is a bug in the caller. */
export function encodeDoc(doc: unknown): Buffer {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof (doc as VersionedDoc).v !== 'number') {
    throw new TypeError('MQTT payload must be a JSON object with a numeric "v" field');
  }
  return Buffer.from(JSON.stringify(doc, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
}

/**
 * A CONNACK refusal (MQTT.js: "Connection refused: …" with the reason code) as a sentence that names the setting to
 * fix; undefined for any other error. Retrying will not help until someone fixes it, but the backoff keeps the
 * retries cheap, and a broker whose password file is being rolled out accepts the device once it has the entry.
 */
export function refusal(e: unknown): string | undefined {
  const msg = errorMessage(e);
  if (!/^Connection refused/.test(msg)) return undefined;
  const code = (e as { code?: unknown }).code;
  const hint = code === 4 || code === 134 ? 'check broker.username and broker.password / broker.passwordFile (EDGETUNE_BROKER_USERNAME, EDGETUNE_BROKER_PASSWORD_FILE)'
    : code === 5 || code === 135 ? 'this identity may not connect: check broker.username and broker.password / broker.passwordFile or the client certificate (broker.tls.cert), and the broker\'s password file'
    : code === 2 || code === 133 ? 'the broker refuses the client id: set broker.clientId'
    : 'see the broker\'s log';
  return `${msg}${typeof code === 'number' ? ` (reason code ${code})` : ''}; ${hint}`;
}

export class Transport {
  readonly events: TypedEvents<TransportEvents>;
  private client: MqttClient | undefined;
  private readonly filters = new Map<string, 0 | 1>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private attempt = 0;
  private reconnectTimer: unknown;
  private stopping = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly opts: TransportOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.events = new TypedEvents((ev, e) => opts.log.error(`transport ${ev} listener failed`, { error: errorMessage(e) }));
  }

  get connected(): boolean {
    return Boolean(this.client?.connected);
  }

  /** Starts connecting in the background; see waitConnected(). */
  start(): void {
    if (this.client) return;
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      keepalive: o.keepaliveS,
      protocolVersion: o.protocolVersion,
      // A persistent session: the broker keeps our subscriptions and queues QoS 1 jobs published while we are
      // offline. Redelivered duplicates are harmless because job ids are deduplicated.
      clean: false,
      manualConnect: true,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
      resubscribe: false, // and restore subscriptions ourselves, on every connect
      queueQoSZero: false, // stale progress is worthless after an outage
      // mqtt-packet would otherwise pre-build 65536 two-byte Buffers for packet ids: 6 MB of heap on a device.
      writeCache: false,
      connectTimeout: o.connectTimeoutMs ?? 30_000,
      will: this.willPacket(),
      ...(o.tls ?? {}),
    };
    if (o.protocolVersion === 5) {
      options.properties = {
        sessionExpiryInterval: o.sessionExpiryS ?? 7 * 24 * 3600,
        ...(o.maximumPacketBytes ? { maximumPacketSize: o.maximumPacketBytes } : {}),
      };
    }
    const client = connect(o.url, options);
    if (o.onMessage) {
      const handle = o.onMessage;
      client.handleMessage = (packet, callback) => {
        handle(packet.topic, packet.payload as Buffer, packet).then(
          () => callback(),
          (e) => {
            // Acknowledged anyway: a message that breaks the handler would break it again on every redelivery.
            o.log.error('incoming message handler failed', { topic: packet.topic, error: errorMessage(e) });
            callback();
          },
        );
      };
    }
    this.client = client;
    client.on('connect', () => void this.onConnect());
    client.on('close', () => this.onClose());
    client.on('error', (e) => {
      const refused = refusal(e);
      if (refused) o.log.error(`the broker refused the connection: ${refused}; retrying with backoff`, { url: o.url });
      else o.log.warn('mqtt error', { url: o.url, error: errorMessage(e) });
      this.events.emit('error', e);
    });
    client.on('message', (topic, payload, packet) => this.events.emit('message', topic, payload, packet));
    client.connect();
  }

  /** Resolves once connected (immediately when already connected); rejects when the signal fires first. */
  waitConnected(signal?: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(signal!.reason);
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Subscribes now (when connected) and again after every reconnect. */
  async subscribe(filter: string, qos: 0 | 1 = 1): Promise<void> {
    this.filters.set(filter, qos);
    if (this.connected) await this.client!.subscribeAsync(filter, { qos });
  }

  async unsubscribe(filter: string): Promise<void> {
    this.filters.delete(filter);
    if (this.connected) await this.client!.unsubscribeAsync(filter);
  }

  /**
   * Publishes a versioned JSON document. QoS 1 messages published while offline are queued by MQTT.js and sent
   * after the next connect; QoS 0 ones are dropped. Resolves when the broker has acknowledged (QoS 1).
   */
  async publish(topic: string, doc: unknown, opts: PublishOptions): Promise<void> {
    assertPublishTopic(topic);
    const payload = encodeDoc(doc);
    if (!this.client) throw new Error(`cannot publish to ${topic}: transport not started`);
    if (opts.qos === 0 && !this.connected) return;
    await this.client.publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain ?? false, properties: opts.properties });
  }

  /**
   * Publishes raw bytes (a model chunk, never a document: those go through publish()) at QoS 1, not retained.
   * Resolves when the broker has acknowledged; queued by MQTT.js while offline.
   */
  async publishBytes(topic: string, payload: Buffer): Promise<void> {
    assertPublishTopic(topic);
    if (!this.client) throw new Error(`cannot publish to ${topic}: transport not started`);
    await this.client.publishAsync(topic, payload, { qos: 1, retain: false });
  }

  /** Publishes `final` (e.g. a retained offline status) when connected, then disconnects cleanly. */
  async stop(final?: { topic: string; doc: VersionedDoc }, timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer !== undefined) this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) return;
    if (!client.connected) {
      // Nothing can be flushed without a connection; QoS 1 messages still queued are lost with the process.
      await client.endAsync(true);
      return;
    }
    let ending = false;
    const graceful = async () => {
      if (final && client.connected) await this.publish(final.topic, final.doc, { qos: 1, retain: true });
      ending = true;
      await client.endAsync();
    };
    let timer: unknown;
    const timedOut = new Promise<'timeout'>((r) => (timer = this.clock.setTimeout(() => r('timeout'), timeoutMs)));
    // A connection that drops meanwhile will never see the acks we are waiting for.
    // (The close that our own end() causes is not a loss.)
    const lost = new Promise<'lost'>((r) => client.once('close', () => { if (!ending) r('lost'); }));
    try {
      const outcome = await Promise.race([graceful().then(() => 'ok' as const), timedOut, lost]);
      if (outcome !== 'ok') {
        this.opts.log.warn(outcome === 'lost'
          ? 'connection lost while disconnecting; the broker publishes the last will instead'
          : `broker did not acknowledge the disconnect within ${timeoutMs} ms; closing the socket`);
        await client.endAsync(true);
      }
    } catch (e) {
      this.opts.log.warn('clean disconnect failed; closing the socket', { error: errorMessage(e) });
      await client.endAsync(true).catch(() => {});
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  private willPacket(): IClientOptions['will'] {
    const w = this.opts.will?.();
    if (!w) return undefined;
    assertPublishTopic(w.topic);
    return { topic: w.topic, payload: encodeDoc(w.doc), qos: 1, retain: true };
  }

  private async onConnect(): Promise<void> {
    this.attempt = 0;
    this.opts.log.info('connected to MQTT broker', { url: this.opts.url });
    try {
      for (const [filter, qos] of this.filters) await this.client!.subscribeAsync(filter, { qos });
    } catch (e) {
      // A refused subscription leaves the agent deaf; drop the connection and let backoff try again.
      this.opts.log.error('subscribe failed; reconnecting', { error: errorMessage(e) });
      this.client?.stream?.destroy();
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    this.events.emit('connect');
  }

  private onClose(): void {
    if (this.stopping) return;
    this.events.emit('disconnect', 'connection closed');
    if (this.reconnectTimer !== undefined) return;
    const delay = backoffDelay(this.attempt++, this.opts.reconnect, this.random);
    this.opts.log.info(`MQTT connection lost; reconnecting in ${delay} ms`, { url: this.opts.url, attempt: this.attempt });
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      const client = this.client;
      if (this.stopping || !client) return;
      client.options.will = this.willPacket();
      // Keep the stores: QoS 1 results published while offline must survive the reconnect.
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  }
}
