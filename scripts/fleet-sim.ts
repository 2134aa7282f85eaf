#!/usr/bin/env -S npx tsx
// Starts N SIMULATED edgetune agents: real MQTT connections (last will, persistent sessions, backoff), the
// agent's real job runner (parsing, dedup, queueing, cancel, timeouts), FAKE workloads (sleeps and made-up
// numbers, every result marked `simulated: true`, every label `sim:`). For tests, demos and `npm run bench:fleet`.
//
//   npx tsx scripts/fleet-sim.ts --count 20                      # embedded broker on 127.0.0.1:1883, fleet "default"
//   npx tsx scripts/fleet-sim.ts --broker mqtt://host:1883 --count 1000 --fleet lab --cost-ms 200
//
// Prints one JSON line `{"ready":true,...}` on stdout when every device is connected; runs until SIGINT/SIGTERM.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EmbeddedBroker } from '../src/agent/broker.js';
import { quietLogger } from '../src/fleet/link.js';
import { SIM_KINDS } from '../src/fleet/sim/fake.js';
import { SimFleet, simDeviceIds } from '../src/fleet/sim/fleet.js';
import type { SimBehaviour } from '../src/fleet/sim/handlers.js';
import { globToRegExp } from '../src/fleet/select.js';
import { loadTargets } from '../src/targets/load.js';

const a = await yargs(hideBin(process.argv))
  .scriptName('fleet-sim')
  .option('count', { alias: 'n', type: 'number', default: 8, describe: 'simulated devices' })
  .option('broker', { type: 'string', describe: 'broker URL; absent: start an embedded broker on --port' })
  .option('port', { type: 'number', default: 1883, describe: 'embedded broker port (a busy one falls back to a free one)' })
  .option('fleet', { type: 'string', default: 'default' })
  .option('prefix', { type: 'string', default: 'sim' })
  .option('kinds', { type: 'string', array: true, choices: Object.keys(SIM_KINDS), describe: 'simulated boards, cycled over the devices (default: all)' })
  .option('cost-ms', { type: 'number', default: 200, describe: 'fake work per bench, per tune candidate and per deploy' })
  .option('fail-deploy', { type: 'string', array: true, describe: 'device ids or globs whose deploys fail' })
  .option('crash-on', { type: 'string', describe: 'type:afterMs:glob, e.g. tune:500:sim-rpi4-0001 — those devices vanish mid-job' })
  .option('state-dir', { type: 'string', describe: 'parent of the devices\' state folders (default: a temp folder, removed at exit)' })
  .option('slice', { type: 'number', default: 100, describe: 'devices connecting at once' })
  .strict()
  .parseAsync();

// Warnings once each: a thousand devices losing their broker at once would otherwise print a thousand lines.
const log = quietLogger();
let broker: EmbeddedBroker | undefined;
let url = a.broker;
if (!url) {
  broker = new EmbeddedBroker({ host: '127.0.0.1', port: a.port, log });
  await broker.start();
  url = broker.url!;
}
const tempRoot = a.stateDir ? undefined : await mkdtemp(join(tmpdir(), 'edgetune-fleet-sim-'));
const stateRoot = a.stateDir ?? tempRoot!;

const behaviour: SimBehaviour = { costMs: a.costMs };
const overrides: Record<string, Partial<SimBehaviour>> = {};
const ids = simDeviceIds(a.count, a.kinds ?? Object.keys(SIM_KINDS), a.prefix).map((d) => d.id);
for (const g of a.failDeploy ?? []) {
  const re = globToRegExp(g);
  for (const id of ids) if (re.test(id)) overrides[id] = { ...overrides[id], failDeploy: true };
}
if (a.crashOn) {
  const [type, ms, glob] = a.crashOn.split(':');
  const re = globToRegExp(glob ?? '*');
  for (const id of ids) if (re.test(id)) overrides[id] = { ...overrides[id], crashOn: { type, afterMs: Number(ms) } };
}
const fleet = new SimFleet({ url, fleet: a.fleet, count: a.count, kinds: a.kinds, prefix: a.prefix, stateRoot, behaviour, overrides, targets: await loadTargets(), log });

const ac = new AbortController();
const stop = async () => {
  ac.abort();
  await fleet.stop();
  await broker?.stop();
  if (tempRoot) await rm(tempRoot, { recursive: true, force: true });
};
process.once('SIGINT', () => void stop().then(() => process.exit(0)));
process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

const started = Date.now();
await fleet.start({ signal: ac.signal, slice: a.slice });
process.stdout.write(JSON.stringify({ ready: true, devices: fleet.devices.length, broker: url, fleet: a.fleet, startS: (Date.now() - started) / 1000, simulated: true }) + '\n');
process.stderr.write(`${fleet.devices.length} SIMULATED devices online on ${url} (fleet ${a.fleet}); try: npx tsx src/cli/main.ts fleet devices --broker ${url} --fleet ${a.fleet}\n`);
