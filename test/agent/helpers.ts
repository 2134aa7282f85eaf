// Shared test fixtures for the agent: a real broker, a real observing MQTT client, a TCP proxy that can cut
// connections, a manual clock, and job handlers that do small real work.
import { createHash } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { connectAsync, type MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/agent/broker.js';
import type { Clock } from '../../src/agent/clock.js';
import { sleep, systemClock } from '../../src/agent/clock.js';
import { loadConfig, type ResolvedConfig } from '../../src/agent/config.js';
import type { HandlerMap } from '../../src/agent/jobs.js';
import { loadModel } from '../../src/onnx/model.js';
import { throwIfAborted } from '../../src/errors.js';

type T = { teardown(fn: () => unknown): void };

export async function startBroker(t: T, port = 0): Promise<{ broker: EmbeddedBroker; url: string; port: number }> {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port });
  const p = await broker.start();
  t.teardown(() => broker.stop());
  return { broker, url: broker.url!, port: p };
}

export interface Seen {
  topic: string;
  doc: any;
  retain: boolean;
}

/** A second MQTT client that records every message on `filter`. */
export async function observe(t: T, url: string, filter: string): Promise<{ client: MqttClient; msgs: Seen[]; waitFor: (pred: (m: Seen) => boolean, what: string, timeoutMs?: number) => Promise<Seen> }> {
  const client = await connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: `obs-${Math.random().toString(16).slice(2)}` });
  t.teardown(() => client.endAsync(true));
  const msgs: Seen[] = [];
  const listeners = new Set<() => void>();
  client.on('message', (topic, payload, packet) => {
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString());
    } catch {
      doc = payload.toString();
    }
    msgs.push({ topic, doc, retain: packet.retain });
    for (const l of listeners) l();
  });
  await client.subscribeAsync(filter, { qos: 1 });
  const waitFor = (pred: (m: Seen) => boolean, what: string, timeoutMs = 10_000) =>
    new Promise<Seen>((resolve, reject) => {
      const check = () => {
        const hit = msgs.find(pred);
        if (!hit) return false;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(msgs.map((m) => [m.topic, m.doc?.state ?? '']))}`));
      }, timeoutMs);
      if (!check()) listeners.add(check);
    });
  return { client, msgs, waitFor };
}

/**
 * A TCP relay in front of the broker; kill() drops every connection as a network failure would, down() also
 * refuses new ones until up().
 */
export async function tcpProxy(t: T, targetPort: number): Promise<{ port: number; kill: () => void; down: () => void; up: () => void; connections: () => number }> {
  const pairs = new Set<[Socket, Socket]>();
  let refusing = false;
  let accepted = 0;
  const server: Server = createServer((inbound) => {
    if (refusing) {
      inbound.destroy();
      return;
    }
    accepted++;
    const outbound = netConnect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const [a, b] of pairs) { a.destroy(); b.destroy(); }
    return new Promise<void>((r) => server.close(() => r()));
  });
  const kill = () => { for (const [a, b] of pairs) { a.destroy(); b.destroy(); } };
  return {
    port: (server.address() as { port: number }).port,
    kill,
    down: () => { refusing = true; kill(); },
    up: () => { refusing = false; },
    connections: () => accepted,
  };
}

export async function testConfig(stateDir: string, url: string | undefined, extra: Record<string, any> = {}): Promise<ResolvedConfig> {
  return loadConfig({
    env: {},
    overrides: {
      fleet: 'test',
      deviceId: 'dev1',
      stateDir,
      ...extra,
      broker: { ...(url ? { url } : { port: 0 }), reconnect: { minMs: 50, maxMs: 400 }, ...extra.broker },
      limits: { maxPayloadBytes: 4096, ...extra.limits },
    },
  });
}

/**
 * Handlers that do small real work: `hash` iterates sha256 (yielding, cancellable, reporting progress),
 * `wait` sleeps on its signal, `stubborn` ignores its signal, `nodes` parses a real ONNX file.
 */
export function testHandlers(counts: Record<string, number> = {}): HandlerMap {
  const bump = (k: string) => { counts[k] = (counts[k] ?? 0) + 1; };
  return {
    hash: {
      params: Type.Object({ text: Type.String(), rounds: Type.Integer({ minimum: 1, maximum: 1e6, default: 1000 }) }, { additionalProperties: false }),
      run: async (params, ctx) => {
        bump('hash');
        const p = params as { text: string; rounds: number };
        let h = p.text;
        for (let i = 0; i < p.rounds; i++) {
          h = createHash('sha256').update(h).digest('hex');
          if (i % 500 === 0) {
            throwIfAborted(ctx.signal, 'hash');
            ctx.onProgress?.({ step: 'hashing', pct: (100 * i) / p.rounds });
            await yieldNow();
          }
        }
        return { v: 1, digest: h, rounds: p.rounds };
      },
    },
    wait: {
      params: Type.Object({ ms: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
      run: async (params, ctx) => {
        bump('wait');
        await sleep(systemClock, (params as { ms: number }).ms, ctx.signal);
        return { v: 1, waited: (params as { ms: number }).ms };
      },
    },
    stubborn: {
      params: Type.Object({ ms: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
      run: async (params) => {
        bump('stubborn');
        await new Promise((r) => setTimeout(r, (params as { ms: number }).ms));
        return { v: 1 };
      },
    },
    nodes: {
      params: Type.Object({ path: Type.String() }, { additionalProperties: false }),
      run: async (params) => {
        bump('nodes');
        const m = await loadModel((params as { path: string }).path);
        return { v: 1, nodes: m.proto.graph?.node.length ?? 0 };
      },
    },
  };
}

export function sha256Rounds(text: string, rounds: number): string {
  let h = text;
  for (let i = 0; i < rounds; i++) h = createHash('sha256').update(h).digest('hex');
  return h;
}

/** Time that only moves when a test says so. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: Array<{ id: number; at: number; fn: () => void }> = [];
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void { this.timers = this.timers.filter((x) => x.id !== h); }
  pending(): number[] { return this.timers.map((x) => x.at - this.t); }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

export async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
