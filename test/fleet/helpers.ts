// Fleet test fixtures: a real broker (aedes over TCP), a fleet of simulated devices with real MQTT connections
// and the agent's real job runner, and a controller session with a results store in a temp folder.
import { join } from 'node:path';
import { EmbeddedBroker } from '../../src/agent/broker.js';
import { memoryLogger } from '../../src/agent/log.js';
import { FleetSession } from '../../src/fleet/session.js';
import { SimFleet, type SimFleetOptions } from '../../src/fleet/sim/fleet.js';
import { ResultsStore } from '../../src/fleet/store/results.js';
import { loadTargets } from '../../src/targets/load.js';
import type { Target } from '../../src/types.js';

type T = { teardown(fn: () => unknown): void; testdir(...a: any[]): string };

let targets: Target[] | undefined;
export async function allTargets(): Promise<Target[]> {
  return (targets ??= await loadTargets());
}

export async function startBroker(t: T): Promise<{ broker: EmbeddedBroker; url: string; port: number }> {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0 });
  const port = await broker.start();
  t.teardown(() => broker.stop());
  return { broker, url: broker.url!, port };
}

export async function startSims(t: T, url: string, opts: Partial<SimFleetOptions> & { count: number }): Promise<SimFleet> {
  const sim = new SimFleet({
    url, fleet: 'ft', stateRoot: join(t.testdir(), 'sims'), behaviour: { costMs: 20 }, targets: await allTargets(),
    reconnect: { minMs: 50, maxMs: 500 }, ...opts,
  });
  t.teardown(() => sim.stop());
  await sim.start();
  return sim;
}

export async function startSession(t: T, url: string, opts: { store?: ResultsStore | false; graceS?: number; fleet?: string } = {}) {
  const store = opts.store === false ? undefined : opts.store ?? (await ResultsStore.open(join(t.testdir(), 'fleet.db')));
  const log = memoryLogger();
  const session = new FleetSession({ url, fleet: opts.fleet ?? 'ft', targets: await allTargets(), store, settleMs: 150, graceS: opts.graceS ?? 5, log });
  t.teardown(async () => {
    await session.stop();
    await store?.close();
  });
  await session.start();
  return { session, store, log };
}

export async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Broker, simulated devices, then a controller session that has seen their retained state. */
export async function startSessionWithSims(t: T, opts: Partial<SimFleetOptions> & { count: number; graceS?: number }) {
  const { url, broker, port } = await startBroker(t);
  const { graceS, ...simOpts } = opts;
  const sim = await startSims(t, url, simOpts);
  const { session, store, log } = await startSession(t, url, { graceS });
  return { url, broker, port, sim, session, store, log };
}
