// `npm run bench:fleet`: the fleet controller at scale, on a local Mosquitto.
//  1. 1,000 SIMULATED agents (scripts/fleet-sim.ts, one child process, real MQTT connections and the agent's job
//     runner, fake 2 s workloads) — the controller sends one bench job to every device and collects the results:
//     once undisturbed, once with a broker restart (SIGTERM, 0.5 s down, start) while every device is mid-job.
//     Reported: time to dispatch, to every acknowledgement, to every result; results lost (must be 0).
//  2. Distributed tuning: the same 12 candidates on 1 simulated device, then split over 4 — wall time of each.
// Writes bench-results/bench-fleet.json. Needs the mosquitto binary (apt-get install mosquitto).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatTable } from '../src/cli/output.js';
import { countOutcomes, sendJobs } from '../src/fleet/dispatch.js';
import { canonicalJson, distributedTune } from '../src/fleet/distributed.js';
import { FleetSession } from '../src/fleet/session.js';
import { SimFleet } from '../src/fleet/sim/fleet.js';
import { LocalMosquitto, findMosquitto } from '../src/fleet/sim/mosquitto.js';
import { ResultsStore } from '../src/fleet/store/results.js';
import { loadTargets } from '../src/targets/load.js';
import type { Recipe } from '../src/types.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';

const a = await yargs(hideBin(process.argv))
  .option('agents', { type: 'number', default: 1000 })
  .option('cost-ms', { type: 'number', default: 2000, describe: 'fake work per bench job on each simulated device' })
  .option('tune-cost-ms', { type: 'number', default: 400, describe: 'fake work per tune candidate' })
  .option('down-ms', { type: 'number', default: 500, describe: 'how long the broker stays down in the restart round' })
  .strict()
  .parseAsync();

if (!findMosquitto()) {
  process.stderr.write('bench:fleet needs mosquitto (apt-get install mosquitto, or set MOSQUITTO_BIN)\n');
  process.exit(1);
}

const root = packageRoot();
const work = await mkdtemp(join(tmpdir(), 'edgetune-bench-fleet-'));
const mq = new LocalMosquitto({ dir: join(work, 'mq') });
const t0 = Date.now();
const secs = (ms: number) => Number((ms / 1000).toFixed(2));
const log = (s: string) => process.stderr.write(`[${secs(Date.now() - t0)} s] ${s}\n`);
let simChild: ReturnType<typeof spawn> | undefined;

async function startSimProcess(url: string): Promise<{ startS: number }> {
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'scripts', 'fleet-sim.ts'), '--broker', url, '--count', String(a.agents),
    '--fleet', 'bench', '--cost-ms', String(a.costMs), '--state-dir', join(work, 'sims'), '--slice', '100'], { stdio: ['ignore', 'pipe', 'inherit'] });
  simChild = child;
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`fleet-sim exited with ${code} before it was ready`)));
    lines.on('line', (l) => {
      try {
        const doc = JSON.parse(l);
        if (doc.ready) resolve({ startS: doc.startS });
      } catch { /* not the ready line */ }
    });
  });
}

interface Round { name: string; devices: number; dispatchS: number; ackedS: number; collectedS: number; succeeded: number; lost: number; stored: number; restartAtS?: number }

async function round(session: FleetSession, store: ResultsStore, name: string, restart: boolean): Promise<Round> {
  const devices = session.view.records().map((r) => r.device);
  const jobId = `bench-${name}`;
  const start = Date.now();
  let dispatchS = 0;
  let ackedS = 0;
  let acked = 0;
  let inProgress = 0;
  let restartAtS: number | undefined;
  let restarting: Promise<void> | undefined;
  const off = session.tracker.events.on('change', (tj, what) => {
    if (tj.jobId !== jobId || what !== 'status') return;
    if (tj.state === 'QUEUED' && ++acked === devices.length) ackedS = secs(Date.now() - start);
    if (tj.state === 'IN_PROGRESS' && ++inProgress === devices.length && restart) {
      restartAtS = secs(Date.now() - start);
      log(`round ${name}: all ${devices.length} devices mid-job; restarting mosquitto (down ${a.downMs} ms)`);
      restarting = mq.restart(a.downMs).then(() => { log('mosquitto is back'); });
    }
  });
  // Dispatched = every job document acknowledged by the broker (QoS 1 PUBACK).
  const entries = await sendJobs(session, { jobId, devices, spec: { type: 'bench', params: { model: 'bench.onnx' }, timeoutS: 120 }, tags: { runId: jobId } });
  dispatchS = secs(Date.now() - start);
  await session.tracker.wait(entries);
  off();
  await restarting;
  const collectedS = secs(Date.now() - start);
  const c = countOutcomes(entries);
  await store.flush();
  const stored = store.results({ runId: jobId }).length;
  const lost = entries.filter((e) => e.verdict !== 'SUCCEEDED' || e.result === undefined).length;
  log(`round ${name}: ${c.succeeded}/${devices.length} succeeded, ${lost} lost, ${stored} stored, all results in ${collectedS} s`);
  return { name, devices: devices.length, dispatchS, ackedS, collectedS, succeeded: c.succeeded, lost, stored, ...(restartAtS !== undefined ? { restartAtS } : {}) };
}

async function distributedRound(url: string): Promise<{ oneDeviceS: number; fourDevicesS: number; speedup: number; sameWinner: boolean; candidates: number }> {
  const targets = await loadTargets();
  const sim = new SimFleet({ url, fleet: 'dist', count: 4, kinds: ['raspberry-pi-5'], stateRoot: join(work, 'dist'), behaviour: { costMs: a.tuneCostMs }, targets });
  await sim.start();
  const session = new FleetSession({ url, fleet: 'dist', targets, settleMs: 300 });
  await session.start();
  try {
    const candidates: Recipe[] = (['fp32', 'dynamic', 'fp16'] as const).flatMap((q) => [1, 2, 3, 4].map((th): Recipe => ({
      v: 1, ...(q === 'fp32' ? {} : { quantize: { mode: q, perChannel: q === 'dynamic' } }), session: { intraOpThreads: th },
    })));
    const ids = sim.devices.map((d) => d.id);
    const one = await distributedTune(session, { runId: 'dist-1', target: 'raspberry-pi-5', devices: ids.slice(0, 1), model: 'm.onnx', budgetMs: 6, candidates });
    const four = await distributedTune(session, { runId: 'dist-4', target: 'raspberry-pi-5', devices: ids, model: 'm.onnx', budgetMs: 6, candidates });
    const speedup = Number((one.wallS / four.wallS).toFixed(2));
    log(`distributed tuning, ${candidates.length} candidates: 1 device ${one.wallS.toFixed(2)} s, 4 devices ${four.wallS.toFixed(2)} s (${speedup}x)`);
    return { oneDeviceS: secs(one.wallS * 1000), fourDevicesS: secs(four.wallS * 1000), speedup, sameWinner: canonicalJson(one.chosen?.recipe ?? null) === canonicalJson(four.chosen?.recipe ?? null), candidates: candidates.length };
  } finally {
    await session.stop();
    await sim.stop();
  }
}

try {
  await mq.start();
  log(`mosquitto on ${mq.url}; starting ${a.agents} simulated agents`);
  const sim = await startSimProcess(mq.url);
  log(`${a.agents} agents connected in ${sim.startS} s`);
  const store = await ResultsStore.open(join(work, 'fleet.db'));
  const session = new FleetSession({ url: mq.url, fleet: 'bench', targets: await loadTargets(), store, settleMs: 1000, graceS: 60 });
  const viewStart = Date.now();
  await session.start();
  const viewS = secs(Date.now() - viewStart);
  const online = session.view.records().filter((r) => r.online).length;
  log(`controller sees ${online} devices online (${viewS} s including the 1 s settle)`);
  const rounds = [await round(session, store, 'steady', false), await round(session, store, 'restart', true)];
  await session.stop();
  await store.close();
  const dist = await distributedRound(mq.url);

  const out = { v: 1, date: new Date().toISOString(), agents: a.agents, costMs: a.costMs, downMs: a.downMs, simulated: true, fleetViewS: viewS, online, rounds, distributed: dist };
  await mkdir(join(root, 'bench-results'), { recursive: true });
  await writeJsonAtomic(join(root, 'bench-results', 'bench-fleet.json'), out);
  process.stdout.write(formatTable(['round', 'devices', 'dispatched s', 'all acked s', 'all results s', 'succeeded', 'lost', 'stored'],
    rounds.map((r) => [r.name + (r.restartAtS !== undefined ? ` (broker restart at ${r.restartAtS} s)` : ''), r.devices, r.dispatchS, r.ackedS, r.collectedS, r.succeeded, r.lost, r.stored])) + '\n');
  process.stdout.write(`distributed tuning of ${dist.candidates} candidates: 1 device ${dist.oneDeviceS} s, 4 devices ${dist.fourDevicesS} s → ${dist.speedup}x (target ≥ 3x; ${dist.sameWinner ? 'same winner' : 'DIFFERENT winners'})\n`);
  process.stdout.write(`(simulated agents: fake ${a.costMs} ms workloads; written to bench-results/bench-fleet.json)\n`);
  if (rounds.some((r) => r.lost > 0)) process.exitCode = 1;
} finally {
  simChild?.kill('SIGTERM');
  await new Promise((r) => (simChild && simChild.exitCode === null ? simChild.once('exit', r) : r(null)));
  await mq.stop();
  await rm(work, { recursive: true, force: true });
}
