// What the `edgetune fleet …` commands do, as plain functions that return data (src/cli/commands/fleet.ts
// prints it). Each opens what it needs (a controller session, the results store), does its work, closes both.
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { loadConfig } from '../agent/config.js';
import { signModel } from '../agent/deploy/signature.js';
import type { Logger } from '../agent/log.js';
import { UsageError } from '../errors.js';
import { loadTargets } from '../targets/load.js';
import type { Recipe, Target, TuneBudget } from '../types.js';
import { brokerCredentials, type TlsMaterial } from './broker-auth.js';
import { countOutcomes, dispatch, type FleetJobSpec } from './dispatch.js';
import { distributedTune, targetCandidates, type DistributedTuneResult } from './distributed.js';
import { deviceRows, type DeviceRow } from './format.js';
import { renderReport, reportData, type ReportData } from './report.js';
import { sendTransfer, type ModelTransfer } from './transfer.js';
import { runRollout, type RolloutPolicy, type RolloutResult, type WaveOutcome } from './rollout.js';
import { describeSelection, newRunId, selectDevices, type Selection } from './select.js';
import { FleetSession } from './session.js';
import { ResultsStore, type FrontRow, type ResultQuery, type ResultRow } from './store/results.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { TrackedJob, TrackerChange } from './tracker.js';

export interface FleetContext {
  url: string;
  fleet: string;
  username?: string;
  password?: string;
  /** broker.tls read from disk (CA, client certificate and key for mqtts://). */
  tls?: TlsMaterial;
  protocolVersion?: 4 | 5;
  /** Results database file; ':memory:' keeps nothing. */
  db: string;
  targets: Target[];
  settleMs?: number;
  graceS?: number;
  log?: Logger;
}

/** Command-line flags that override the config's broker settings (the same fields the agent reads). */
export interface BrokerFlags {
  broker?: string;
  username?: string;
  passwordFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/** The flags as a config layer: relative paths resolve against the working directory, like any command-line value. */
export function brokerOverrides(a: BrokerFlags): Record<string, unknown> {
  const tls = { ...(a.ca ? { ca: a.ca } : {}), ...(a.cert ? { cert: a.cert } : {}), ...(a.key ? { key: a.key } : {}) };
  const broker = {
    ...(a.broker ? { url: a.broker } : {}), ...(a.username ? { username: a.username } : {}), ...(a.passwordFile ? { passwordFile: a.passwordFile } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
  };
  return Object.keys(broker).length ? { broker } : {};
}

/**
 * Broker, credentials, fleet and database from the same config the agent reads (--config file or
 * $EDGETUNE_CONFIG, EDGETUNE_* variables), flags on top. TLS files and the password file are read here, by the
 * agent's own loaders, so a missing file fails before any connection is tried.
 */
export async function resolveFleetContext(a: BrokerFlags & { config?: string; fleet?: string; db?: string; settleMs?: number }): Promise<FleetContext> {
  const file = a.config ?? (process.env.EDGETUNE_CONFIG || undefined);
  const config = await loadConfig({ file, overrides: { ...brokerOverrides(a), ...(a.fleet ? { fleet: a.fleet } : {}) } });
  const b = config.broker;
  // No broker URL: the broker is the embedded one a local agent starts on host:port.
  const host = !b.host || b.host === '0.0.0.0' || b.host === '::' ? '127.0.0.1' : b.host;
  return {
    url: b.url ?? `mqtt://${host.includes(':') ? `[${host}]` : host}:${b.port}`,
    fleet: config.fleet,
    ...(await brokerCredentials(b)),
    protocolVersion: b.protocolVersion,
    db: a.db ?? join(config.stateDir, 'fleet.db'),
    targets: await loadTargets(),
    ...(a.settleMs !== undefined ? { settleMs: a.settleMs } : {}),
  };
}

async function openSession(ctx: FleetContext, store: ResultsStore | undefined, followJobs: boolean, signal?: AbortSignal): Promise<FleetSession> {
  const s = new FleetSession({
    url: ctx.url, fleet: ctx.fleet, username: ctx.username, password: ctx.password, tls: ctx.tls, protocolVersion: ctx.protocolVersion,
    targets: ctx.targets, store, settleMs: ctx.settleMs, graceS: ctx.graceS, log: ctx.log, followJobs,
  });
  try {
    await s.start({ signal });
  } catch (e) {
    await s.stop().catch(() => {});
    throw e;
  }
  return s;
}

/** Opens the store and a session, runs `fn`, and closes both whatever happens. */
async function withFleet<T>(ctx: FleetContext, signal: AbortSignal | undefined, fn: (s: FleetSession, store: ResultsStore) => Promise<T>): Promise<T> {
  const store = await ResultsStore.open(ctx.db, { onFlushError: (e) => ctx.log?.error('results store write failed', { error: String(e) }) });
  try {
    const s = await openSession(ctx, store, true, signal);
    try {
      return await fn(s, store);
    } finally {
      await s.stop();
    }
  } finally {
    await store.close();
  }
}

function pickDevices(s: FleetSession, sel: Selection): string[] {
  const { selected, unknown } = selectDevices(s.view.records(), sel);
  const ids = [...selected.map((r) => r.device), ...unknown];
  if (!ids.length) throw new UsageError(`no devices match ${describeSelection(sel)} (${s.view.size} devices known in fleet '${s.fleet}'; see edgetune fleet devices)`);
  return ids;
}

export async function fleetDevices(ctx: FleetContext, opts: { signal?: AbortSignal } = {}): Promise<{ rows: DeviceRow[]; latest: Map<string, ResultRow> }> {
  // The store is optional here: a fleet without a controller history still lists its devices.
  const store = await ResultsStore.open(ctx.db, { readonly: true }).catch(() => undefined);
  try {
    const s = await openSession(ctx, undefined, false, opts.signal);
    try {
      const latest = store?.latestByDevice() ?? new Map();
      return { rows: deviceRows(s.view.records(), latest), latest };
    } finally {
      await s.stop();
    }
  } finally {
    await store?.close();
  }
}

export interface RunRequest {
  selection: Selection;
  spec: FleetJobSpec;
  includeOffline?: boolean;
  signal?: AbortSignal;
  onChange?: (t: TrackedJob, what: TrackerChange) => void;
}

/** Sends one job to the selected devices and collects every verdict (bench, tune, rollback, profile…). */
export async function fleetRun(ctx: FleetContext, req: RunRequest): Promise<{ runId: string; entries: TrackedJob[] }> {
  return withFleet(ctx, req.signal, async (s, store) => {
    const devices = pickDevices(s, req.selection);
    const runId = newRunId();
    store.recordRun({ id: runId, kind: req.spec.type, fleet: ctx.fleet, selection: describeSelection(req.selection), params: req.spec.params, createdAt: new Date().toISOString() });
    const entries = await dispatch(s, { jobId: runId, devices, spec: req.spec, includeOffline: req.includeOffline, tags: { runId }, signal: req.signal, onChange: req.onChange });
    store.finishRun(runId, countOutcomes(entries));
    return { runId, entries };
  });
}

export interface DeployRequest extends RunRequest {
  policy: RolloutPolicy;
  onWave?: (w: WaveOutcome, rate: number) => void;
  /** Send the model over MQTT: each wave's devices get the chunks before their deploy job (spec names the transfer). */
  transfer?: ModelTransfer;
  onTransferred?: (device: string) => void;
}

export async function fleetDeploy(ctx: FleetContext, req: DeployRequest): Promise<RolloutResult> {
  return withFleet(ctx, req.signal, async (s, store) => {
    const devices = pickDevices(s, req.selection);
    const runId = newRunId('d');
    store.recordRun({ id: runId, kind: 'deploy', fleet: ctx.fleet, selection: describeSelection(req.selection), params: { deploy: req.spec.params, policy: req.policy }, createdAt: new Date().toISOString() });
    const t = req.transfer;
    // Chunks only to the devices the wave's jobs go to (offline ones are skipped unless --include-offline), and not
    // to a device that holds this file already (active or previous): it deploys without reading the chunks, which
    // would then sit in one of its few open-transfer slots until its weekly clean-up.
    const needs = (d: string) => {
      const r = s.view.get(d);
      return (req.includeOffline || r?.online === true) && r?.deployed?.sha256 !== t!.sha256 && r?.deployed?.previousSha256 !== t!.sha256;
    };
    const beforeWave = t ? (wave: string[]) => sendTransfer(s.link, wave.filter(needs), t, { signal: req.signal, onDevice: req.onTransferred }) : undefined;
    const r = await runRollout(s, { runId, devices, deploy: req.spec, policy: req.policy, includeOffline: req.includeOffline, signal: req.signal, onChange: req.onChange, onWave: req.onWave, beforeWave });
    store.finishRun(runId, { status: r.status, reason: r.reason, waves: r.waves.map(({ devices: d, ...w }) => ({ ...w, devices: d.length })), rolledBack: r.rollbacks.length, unknown: r.unknown });
    return r;
  });
}

export interface DistributedRequest {
  selection: Selection;
  model: string;
  budgetMs: number;
  percentile?: TuneBudget['percentile'];
  memoryMB?: number;
  /** Explicit candidates; default: each target's search space at the smallest core count among its devices. */
  candidates?: Recipe[];
  timeoutS?: number;
  /** Roll the winner out to every selected device of its target (default true). */
  deploy?: boolean;
  /** The fleet's ed25519 private key: the rollout's deploys are signed (devices with deploy.publicKey need it). */
  signKey?: KeyObject;
  policy: RolloutPolicy;
  signal?: AbortSignal;
  onChange?: (t: TrackedJob, what: TrackerChange) => void;
  onReassign?: (target: string, share: number, from: string, why: string) => void;
  onWave?: (w: WaveOutcome, rate: number) => void;
}

export interface DistributedOutcome {
  runId: string;
  tunes: DistributedTuneResult[];
  rollouts: RolloutResult[];
  /** Selected devices left out: offline, or no known target. */
  skipped: Array<{ device: string; why: string }>;
}

/** One distributed tune per hardware target among the selected devices; each winner rolled out to its class. */
export async function fleetTuneDistributed(ctx: FleetContext, req: DistributedRequest): Promise<DistributedOutcome> {
  return withFleet(ctx, req.signal, async (s, store) => {
    const ids = pickDevices(s, req.selection);
    const runId = newRunId('t');
    store.recordRun({ id: runId, kind: 'tune-distributed', fleet: ctx.fleet, selection: describeSelection(req.selection), params: { model: req.model, budgetMs: req.budgetMs, percentile: req.percentile ?? 90 }, createdAt: new Date().toISOString() });
    const skipped: DistributedOutcome['skipped'] = [];
    const byTarget = new Map<string, string[]>();
    for (const id of ids) {
      const r = s.view.get(id);
      if (!r?.target) skipped.push({ device: id, why: r?.targetNote ?? 'no profile, so no known target' });
      else if (r.online !== true) skipped.push({ device: id, why: 'offline' });
      else byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), id]);
    }
    if (!byTarget.size) throw new UsageError(`no online device with a known target among ${describeSelection(req.selection)}`);
    const perTarget = [...byTarget].map(async ([target, devices], i) => {
      const t = ctx.targets.find((x) => x.name === target);
      const cores = Math.min(...devices.map((d) => s.view.get(d)?.profile?.cpu.cores ?? 1));
      const candidates = req.candidates ?? targetCandidates(t, cores);
      const tune = await distributedTune(s, {
        runId: byTarget.size > 1 ? `${runId}-${i}` : runId, target, devices, model: req.model, budgetMs: req.budgetMs,
        percentile: req.percentile, memoryMB: req.memoryMB, candidates, timeoutS: req.timeoutS, signal: req.signal,
        onChange: req.onChange, onReassign: (share, from, why) => req.onReassign?.(target, share, from, why),
      });
      store.recordFront({ runId: tune.runId, target, createdAt: new Date().toISOString(), percentile: tune.budget.percentile, winner: tune.chosen ?? undefined, front: tune.front });
      let rollout: RolloutResult | undefined;
      if (tune.chosen && req.deploy !== false) {
        if (!tune.modelSha256) {
          tune.notes.push('the winner was not rolled out: the devices did not report one sha256 for the model, and a deploy must name it');
        } else {
          // The devices compress the model they measured with the winning recipe, and each refuses (and keeps its
          // current model) when the result misses the budget on that device.
          const params = {
            model: req.model, sha256: tune.modelSha256, recipe: tune.chosen.recipe,
            budget: { latencyMs: tune.budget.latencyMs, percentile: tune.budget.percentile },
            ...(req.signKey ? { signature: signModel(tune.modelSha256, req.signKey) } : {}),
          };
          rollout = await runRollout(s, {
            runId: `${tune.runId}-d`, devices, policy: req.policy, signal: req.signal, onChange: req.onChange, onWave: req.onWave,
            deploy: { type: 'deploy', params },
          });
        }
      }
      return { tune, rollout };
    });
    const done = await Promise.all(perTarget);
    const out: DistributedOutcome = { runId, tunes: done.map((d) => d.tune), rollouts: done.flatMap((d) => (d.rollout ? [d.rollout] : [])), skipped };
    store.finishRun(runId, { targets: out.tunes.map((t) => ({ target: t.target, chosen: t.chosen?.label ?? null, trials: t.trials.length, unmeasured: t.unmeasured.length, wallS: t.wallS })) });
    return out;
  });
}

/** Rows read from each database in turn (several collectors each keep their own), a row stored in two counted once. */
async function mergeStores<T>(dbs: string[], read: (store: ResultsStore) => Iterable<T>, key: (row: T) => string): Promise<T[]> {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const file of dbs) {
    const store = await ResultsStore.open(file, { readonly: true });
    try {
      for (const r of read(store)) {
        const k = key(r);
        if (seen.has(k)) continue;
        seen.add(k);
        out.push(r);
      }
    } finally {
      await store.close();
    }
  }
  return out;
}

/** Results from one or more databases, newest last, duplicates dropped. */
export async function fleetResults(dbs: string[], q: ResultQuery = {}): Promise<ResultRow[]> {
  const rows = await mergeStores(dbs, (s) => s.results(q), (r) => `${r.device}\u0000${r.jobId}`);
  return rows.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.device.localeCompare(b.device));
}

/** Merged Pareto fronts from one or more databases, oldest first; a front stored in two of them counts once. */
export async function fleetFronts(dbs: string[], q: { since?: string } = {}): Promise<FrontRow[]> {
  const rows = await mergeStores(dbs, (s) => s.fronts(q), (f) => `${f.runId}\u0000${f.target}`);
  return rows.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.target.localeCompare(b.target));
}

/** The HTML report of one or more databases (several collectors each keep their own), written atomically. */
export async function fleetReport(dbs: string[], file: string, opts: { since?: string; title?: string } = {}): Promise<ReportData> {
  const data = reportData(await fleetResults(dbs, { since: opts.since }), await fleetFronts(dbs, { since: opts.since }), { title: opts.title });
  await writeFileAtomic(file, renderReport(data));
  return data;
}
