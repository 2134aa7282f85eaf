// `edgetune fleet …`: the fleet controller's commands. Each handler calls a plain function of src/fleet/api.ts
// and prints what it returns; live progress goes to stderr so that --json output on stdout stays parseable.
import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { readRecipeFile, parseRecipe } from '../../compress/recipe-file.js';
import { UsageError, errorMessage } from '../../errors.js';
import { fleetDeploy, fleetDevices, fleetReport, fleetResults, fleetRun, fleetTuneDistributed, resolveFleetContext } from '../../fleet/api.js';
import { Collector } from '../../fleet/collector.js';
import { deployParams, readSigningKey } from '../../fleet/deploy-params.js';
import { countOutcomes } from '../../fleet/dispatch.js';
import { formatDevices, formatDistributed, formatOutcomes, formatResults, formatRollout, formatWave, progressLine } from '../../fleet/format.js';
import { summarizeResult } from '../../fleet/result-doc.js';
import { DEFAULT_POLICY, parseAmount, type RolloutPolicy } from '../../fleet/rollout.js';
import { DEFAULT_CHUNK_BYTES, prepareTransfer, transferParams } from '../../fleet/transfer.js';
import type { Selection } from '../../fleet/select.js';
import { ResultsStore, parseSince } from '../../fleet/store/results.js';
import type { TrackedJob, TrackerChange } from '../../fleet/tracker.js';
import type { Recipe } from '../../types.js';
import { info, printJson } from '../output.js';
import { signalOnInterrupt } from '../progress.js';
import { EXIT_BUDGET_NOT_MET } from './tune.js';

/** Exit code when some devices failed, never answered, or a rollout was aborted. */
export const EXIT_FLEET_FAILURES = 4;

interface Common { broker?: string; fleet?: string; config?: string; db?: string; json: boolean; quiet: boolean; settleMs?: number; username?: string; passwordFile?: string; ca?: string; cert?: string; key?: string }
interface Sel { devices?: string[]; target?: string; all: boolean; timeout?: number; includeOffline: boolean; params?: string }
interface Rollout { canary: string; batch: string; interval: number; maxFailureRate: number }

const common = (y: Argv) => y
  .option('broker', { type: 'string', describe: 'broker URL (default: broker.url from the config / EDGETUNE_BROKER_URL, else the local embedded broker)' })
  .option('fleet', { type: 'string', describe: 'fleet name, the second topic level (default: config fleet / EDGETUNE_FLEET)' })
  .option('config', { alias: 'c', type: 'string', describe: 'agent config file to read broker, credentials and fleet from (default: $EDGETUNE_CONFIG)' })
  .option('username', { type: 'string', describe: 'broker username (broker.username / EDGETUNE_BROKER_USERNAME)' })
  .option('password-file', { type: 'string', describe: 'file whose first line is the broker password (broker.passwordFile / EDGETUNE_BROKER_PASSWORD_FILE)' })
  .option('ca', { type: 'string', describe: 'PEM file of the CA that signed the broker certificate, for mqtts:// (broker.tls.ca)' })
  .option('cert', { type: 'string', describe: 'PEM client certificate for mutual TLS (broker.tls.cert); needs --key' })
  .option('key', { type: 'string', describe: 'PEM private key of --cert (broker.tls.key)' })
  .option('db', { type: 'string', describe: 'results database (SQLite) file; default <stateDir>/fleet.db' })
  .option('settle-ms', { type: 'number', describe: 'quiet time that ends the burst of retained messages at connect' })
  .option('json', { type: 'boolean', default: false })
  .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no live progress lines' });

const selection = (y: Argv) => y
  .option('devices', { alias: 'd', type: 'string', array: true, describe: 'device ids or globs (sim-rpi4-*), comma-separated or repeated' })
  .option('target', { alias: 't', type: 'string', describe: 'every device whose profile matches this hardware target' })
  .option('all', { type: 'boolean', default: false, describe: 'every device of the fleet' })
  .option('timeout', { type: 'number', describe: 'job timeout in seconds (the device aborts after it; the controller waits a little longer)' })
  .option('include-offline', { type: 'boolean', default: false, describe: 'also send to devices shown offline (their broker session may queue the job)' })
  .option('params', { type: 'string', describe: 'extra job params as JSON, merged over the ones the flags make' });

const rollout = (y: Argv) => y
  .option('canary', { type: 'string', default: '1', describe: 'canary group first: a count (3) or a percentage (5%); 0 = none' })
  .option('batch', { type: 'string', default: '100%', describe: 'devices per batch after the canary: a count or a percentage' })
  .option('interval', { type: 'number', default: 0, describe: 'seconds to wait between waves' })
  .option('max-failure-rate', { type: 'number', default: DEFAULT_POLICY.maxFailureRate, describe: 'abort and roll back when failed/answered goes above this fraction' });

function sel(a: Sel): Selection {
  return { devices: a.devices, target: a.target, all: a.all };
}

function policy(a: Rollout): RolloutPolicy {
  return { canary: parseAmount(a.canary, '--canary'), batch: parseAmount(a.batch, '--batch'), intervalS: a.interval, maxFailureRate: a.maxFailureRate };
}

function extraParams(a: Sel): Record<string, unknown> {
  if (!a.params) return {};
  try {
    const v = JSON.parse(a.params);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v;
  } catch (e) {
    throw new UsageError(`--params: ${errorMessage(e)}; give a JSON object, e.g. '{"key": 1}'`);
  }
}

async function readCandidates(file: string): Promise<Recipe[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--candidates ${file}: ${errorMessage(e)}`);
  }
  if (!Array.isArray(doc) || !doc.length) throw new UsageError(`--candidates ${file}: expected a non-empty JSON array of recipes`);
  return doc.map((r, i) => parseRecipe(r, `--candidates ${file} item ${i}`));
}

/** One stderr line per state change of a device job; progress at most every 2 s per device. */
function follower(a: Common): ((t: TrackedJob, what: TrackerChange) => void) | undefined {
  if (a.quiet) return undefined;
  const last = new Map<string, number>();
  return (t, what) => {
    if (what === 'result') return;
    const k = `${t.device}/${t.jobId}`;
    const now = Date.now();
    if (what === 'progress' && now - (last.get(k) ?? 0) < 2000) return;
    last.set(k, now);
    info(progressLine(t, what));
  };
}

function exitFor(entries: TrackedJob[]): void {
  if (countOutcomes(entries).failed > 0) process.exitCode = EXIT_FLEET_FAILURES;
  else if (entries.some((t) => t.verdict === 'SUCCEEDED' && summarizeResult(t.result).chosen === false)) process.exitCode = EXIT_BUDGET_NOT_MET;
}

function entryJson(t: TrackedJob) {
  return { device: t.device, jobId: t.jobId, verdict: t.verdict, ...(t.error ? { error: t.error } : {}), ...(t.result !== undefined ? { result: t.result } : {}) };
}

async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const { signal, dispose } = signalOnInterrupt();
  try {
    return await fn(signal);
  } finally {
    dispose();
  }
}

const devices: CommandModule<object, Common> = {
  command: 'devices',
  describe: 'List the fleet from the broker\'s retained state: target, online, deployed model and recipe, last result',
  builder: (y) => common(y) as unknown as Argv<Common>,
  handler: async (a) => {
    const ctx = await resolveFleetContext(a);
    const { rows, latest } = await interruptible((signal) => fleetDevices(ctx, { signal }));
    if (a.json) printJson({ v: 1, fleet: ctx.fleet, broker: ctx.url, devices: rows });
    else process.stdout.write(formatDevices(rows, latest) + '\n');
  },
};

type JobArgs = Common & Sel & { model: string; recipe?: string; reason?: string };

/** bench and rollback: one job to every selected device, a table of verdicts. */
function jobCommand(type: 'bench' | 'rollback', describe: string): CommandModule<object, JobArgs> {
  return {
    command: type,
    describe,
    builder: (y) => {
      const b = selection(common(y));
      return (type === 'bench'
        ? b.option('model', { type: 'string', demandOption: true, describe: 'model path on the device' }).option('recipe', { type: 'string', describe: 'recipe file to apply before measuring' })
        : b.option('reason', { type: 'string', describe: 'why, recorded by the device' })) as unknown as Argv<JobArgs>;
    },
    handler: async (a) => {
      const ctx = await resolveFleetContext(a);
      const params = type === 'bench'
        ? { model: a.model, ...(a.recipe ? { recipe: await readRecipeFile(a.recipe) } : {}), ...extraParams(a) }
        : { ...(a.reason ? { reason: a.reason } : {}), ...extraParams(a) };
      const { runId, entries } = await interruptible((signal) => fleetRun(ctx, {
        selection: sel(a), spec: { type, params, timeoutS: a.timeout }, includeOffline: a.includeOffline, signal, onChange: follower(a),
      }));
      if (a.json) printJson({ v: 1, runId, outcomes: entries.map(entryJson), counts: countOutcomes(entries) });
      else process.stdout.write(`${formatOutcomes(entries)}\nrun ${runId}\n`);
      exitFor(entries);
    },
  };
}

type TuneArgs = JobArgs & Rollout & { budgetMs: number; percentile: number; memoryMb?: number; distributed: boolean; candidates?: string; deploy: boolean; signKey?: string };

const tune: CommandModule<object, TuneArgs> = {
  command: 'tune',
  describe: 'Tune on each selected device, or (--distributed) split one tune over the devices of each target and roll the winner out',
  builder: (y) => rollout(selection(common(y)))
    .option('model', { type: 'string', demandOption: true, describe: 'model path on the devices' })
    .option('budget-ms', { type: 'number', demandOption: true, describe: 'latency budget in milliseconds' })
    .option('percentile', { type: 'number', choices: [50, 90, 95, 99], default: 90 })
    .option('memory-mb', { type: 'number', describe: 'peak memory limit' })
    .option('distributed', { type: 'boolean', default: false, describe: 'split the candidate list across the online devices of each target' })
    .option('candidates', { type: 'string', describe: '--distributed: JSON file with the recipes to try (default: the target\'s grid)' })
    .option('deploy', { type: 'boolean', default: true, describe: '--distributed: roll the winner out to the target\'s devices (--no-deploy to skip)' })
    .option('sign-key', { type: 'string', describe: '--distributed: the fleet\'s ed25519 private key (PEM) to sign the winner\'s rollout' }) as unknown as Argv<TuneArgs>,
  handler: async (a) => {
    const ctx = await resolveFleetContext(a);
    const percentile = a.percentile as 50 | 90 | 95 | 99;
    if (!a.distributed) {
      const params = { model: a.model, budgetMs: a.budgetMs, percentile, ...(a.memoryMb !== undefined ? { memoryMB: a.memoryMb } : {}), ...extraParams(a) };
      const { runId, entries } = await interruptible((signal) => fleetRun(ctx, {
        selection: sel(a), spec: { type: 'tune', params, timeoutS: a.timeout }, includeOffline: a.includeOffline, signal, onChange: follower(a),
      }));
      if (a.json) printJson({ v: 1, runId, outcomes: entries.map(entryJson), counts: countOutcomes(entries) });
      else process.stdout.write(`${formatOutcomes(entries)}\nrun ${runId}\n`);
      exitFor(entries);
      return;
    }
    const candidates = a.candidates ? await readCandidates(a.candidates) : undefined;
    const signKey = a.signKey ? await readSigningKey(a.signKey) : undefined;
    const out = await interruptible((signal) => fleetTuneDistributed(ctx, {
      selection: sel(a), model: a.model, budgetMs: a.budgetMs, percentile, memoryMB: a.memoryMb, candidates, timeoutS: a.timeout,
      deploy: a.deploy, policy: policy(a), signal, onChange: follower(a), ...(signKey ? { signKey } : {}),
      onReassign: (target, share, from, why) => info(`${target}: share ${share} taken from ${from} (${why}); reassigning`),
      onWave: a.quiet ? undefined : (w, rate) => info(formatWave(w, rate)),
    }));
    if (a.json) printJson({ v: 1, ...out, rollouts: out.rollouts.map((r) => ({ ...r, deploys: r.deploys.map(entryJson), rollbacks: r.rollbacks.map(entryJson) })) });
    else {
      for (const t of out.tunes) process.stdout.write(formatDistributed(t) + '\n\n');
      for (const r of out.rollouts) process.stdout.write(formatRollout(r) + '\n');
      for (const s of out.skipped) info(`skipped ${s.device}: ${s.why}`);
    }
    if (out.tunes.some((t) => t.unmeasured.length) || out.rollouts.some((r) => r.status === 'aborted')) process.exitCode = EXIT_FLEET_FAILURES;
    else if (out.tunes.some((t) => !t.chosen)) process.exitCode = EXIT_BUDGET_NOT_MET;
  },
};

type DeployArgs = Omit<JobArgs, 'model'> & Rollout & { model?: string; url?: string; transfer: boolean; chunkBytes: number; sha256?: string; file?: string; signKey?: string; name?: string; budgetMs?: number; percentile: number };

const deploy: CommandModule<object, DeployArgs> = {
  command: 'deploy',
  describe: 'Roll a model (and recipe) out: canary first, then batches; abort and roll back past the failure threshold',
  builder: (y) => rollout(selection(common(y)))
    .option('model', { type: 'string', describe: 'model path on the devices (examples/… or under their state folder)' })
    .option('url', { type: 'string', describe: 'or an https URL the devices download the model from (resumed after a drop)' })
    .option('transfer', { type: 'boolean', default: false, describe: 'or send --file to the devices over MQTT in chunks (devices that reach only the broker)' })
    .option('chunk-bytes', { type: 'number', default: DEFAULT_CHUNK_BYTES, describe: '--transfer: chunk size, at most the devices\' limits.maxPayloadBytes' })
    .option('sha256', { type: 'string', describe: 'sha256 of the model file (default: hashed from --file, or from --model when that file exists here)' })
    .option('file', { type: 'string', describe: 'a copy of the model on this machine, to compute the sha256 from' })
    .option('sign-key', { type: 'string', describe: 'the fleet\'s ed25519 private key (PEM): sign the model, as devices with deploy.publicKey require' })
    .option('recipe', { type: 'string', describe: 'recipe file: the device compresses the model with it before activating' })
    .option('name', { type: 'string', describe: 'a name the devices record with the deployment' })
    .option('budget-ms', { type: 'number', describe: 'each device refuses (and keeps its current model) when the new one misses this latency' })
    .option('percentile', { type: 'number', choices: [50, 90, 95, 99], default: 90 }) as unknown as Argv<DeployArgs>,
  handler: async (a) => {
    const ctx = await resolveFleetContext(a);
    if (a.transfer && !a.file) throw new UsageError('--transfer sends a file from this machine: give it with --file');
    const transfer = a.transfer ? await prepareTransfer(a.file!, a.chunkBytes) : undefined;
    if (transfer) info(`sending ${a.file} (${transfer.bytes} bytes) over MQTT in ${transfer.chunks.length} chunks to each device, transfer ${transfer.id}`);
    const { params, notes } = await deployParams({
      model: a.model, url: a.url, ...(transfer ? { transfer: { ...transferParams(transfer), sha256: transfer.sha256 } } : {}), sha256: a.sha256, file: a.file, signKey: a.signKey, name: a.name,
      ...(a.recipe ? { recipe: await readRecipeFile(a.recipe) } : {}),
      ...(a.budgetMs !== undefined ? { budget: { latencyMs: a.budgetMs, percentile: a.percentile as 50 | 90 | 95 | 99 } } : {}),
      extra: extraParams(a),
    });
    for (const n of notes) info(n);
    const r = await interruptible((signal) => fleetDeploy(ctx, {
      selection: sel(a), spec: { type: 'deploy', params, timeoutS: a.timeout }, policy: policy(a), includeOffline: a.includeOffline, signal,
      onChange: follower(a), onWave: a.quiet ? undefined : (w, rate) => info(formatWave(w, rate)),
      ...(transfer ? { transfer, onTransferred: a.quiet ? undefined : (d: string) => info(`${d}: ${transfer.chunks.length} chunks acknowledged by the broker`) } : {}),
    }));
    if (a.json) printJson({ v: 1, ...r, deploys: r.deploys.map(entryJson), rollbacks: r.rollbacks.map(entryJson) });
    else process.stdout.write(formatRollout(r) + '\n');
    if (r.status === 'aborted' || countOutcomes(r.deploys).failed > 0) process.exitCode = EXIT_FLEET_FAILURES;
  },
};

type ResultsArgs = Common & { since?: string; device?: string; type?: string; run?: string; db?: string; dbs?: string[] };

const results: CommandModule<object, ResultsArgs> = {
  command: 'results',
  describe: 'Results recorded in the results database(s): device, job, candidate, latency, quality',
  builder: (y) => common(y)
    .option('since', { type: 'string', describe: 'only results received since: 30m, 2h, 7d or a date' })
    .option('device', { type: 'string' })
    .option('type', { type: 'string', describe: 'tune, bench, deploy…' })
    .option('run', { type: 'string', describe: 'one run id' })
    .option('dbs', { type: 'string', array: true, describe: 'read several databases together (one per collector)' }) as unknown as Argv<ResultsArgs>,
  handler: async (a) => {
    const files = a.dbs?.length ? a.dbs : [(await resolveFleetContext(a)).db];
    const rows = await fleetResults(files, { since: a.since ? parseSince(a.since) : undefined, device: a.device, type: a.type, runId: a.run });
    if (a.json) printJson({ v: 1, results: rows });
    else process.stdout.write(`${formatResults(rows)}\n${rows.length} results\n`);
  },
};

type CollectArgs = Common & { shareGroup: string; share: boolean; clientId?: string; duration?: number; count?: number };

const collect: CommandModule<object, CollectArgs> = {
  command: 'collect',
  describe: 'Record every job result of the fleet until stopped; several collectors share the load with a shared subscription',
  builder: (y) => common(y)
    .option('share-group', { type: 'string', default: 'edgetune', describe: 'shared subscription group ($share/<group>/…)' })
    .option('share', { type: 'boolean', default: true, describe: '--no-share: plain subscription (brokers without shared subscriptions, e.g. the embedded one)' })
    .option('client-id', { type: 'string', describe: 'stable MQTT client id of this collector (default edgetune-collector-<fleet>-<pid>)' })
    .option('duration', { type: 'number', describe: 'stop after this many seconds (default: until Ctrl-C)' })
    .option('count', { type: 'number', describe: 'stop once this many new results are recorded' }) as unknown as Argv<CollectArgs>,
  handler: async (a) => {
    for (const [flag, v] of [['--duration', a.duration], ['--count', a.count]] as const) {
      if (v !== undefined && !(v > 0)) throw new UsageError(`${flag} ${v}: give a number above 0`);
    }
    const ctx = await resolveFleetContext(a);
    const store = await ResultsStore.open(ctx.db);
    const { signal: interrupted, dispose } = signalOnInterrupt();
    const enough = new AbortController();
    const c = new Collector({
      url: ctx.url, fleet: ctx.fleet, store, targets: ctx.targets, username: ctx.username, password: ctx.password, tls: ctx.tls, protocolVersion: ctx.protocolVersion,
      clientId: a.clientId ?? `edgetune-collector-${ctx.fleet}-${process.pid}`, ...(a.share ? { shareGroup: a.shareGroup } : {}),
      onBatch: (st) => { if (a.count && st.results >= a.count) enough.abort(); },
    });
    try {
      // Only Ctrl-C cancels the connect; --duration counts from the moment the collector is listening.
      await c.start({ signal: interrupted });
      const signal = AbortSignal.any([interrupted, enough.signal, ...(a.duration ? [AbortSignal.timeout(a.duration * 1000)] : [])]);
      const until = [a.count ? `${a.count} results` : '', a.duration ? `${a.duration} s` : ''].filter(Boolean).join(' or ');
      info(`collecting ${c.filters().join(', ')} from ${ctx.url} into ${store.file ?? 'memory'}; ${until ? `stopping after ${until} or ` : ''}Ctrl-C to stop`);
      await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));
    } finally {
      dispose();
      await c.stop();
      await store.close();
    }
    if (a.json) printJson({ v: 1, ...c.stats });
    else info(`collected ${c.stats.results} results (${c.stats.duplicates} duplicates ignored), ${c.stats.statuses} final statuses`);
  },
};

type ReportArgs = Common & { output: string; since?: string; title?: string; dbs?: string[] };

const report: CommandModule<object, ReportArgs> = {
  command: 'report',
  describe: 'Write an HTML page (inline SVG) with per-target latency and quality of deployed recipes and the merged Pareto fronts',
  builder: (y) => common(y)
    .option('output', { alias: 'o', type: 'string', default: 'fleet-report.html' })
    .option('since', { type: 'string', describe: 'only results since: 30m, 2h, 7d or a date' })
    .option('title', { type: 'string' })
    .option('dbs', { type: 'string', array: true, describe: 'report on several databases together (one per collector)' }) as unknown as Argv<ReportArgs>,
  handler: async (a) => {
    const files = a.dbs?.length ? a.dbs : [(await resolveFleetContext(a)).db];
    const data = await fleetReport(files, a.output, { since: a.since ? parseSince(a.since) : undefined, title: a.title });
    if (a.json) printJson({ v: 1, output: a.output, targets: data.targets.map((t) => ({ target: t.target, devices: t.devices.length, fronts: t.fronts.length })) });
    else info(`wrote ${a.output}: ${data.targets.length} targets, ${data.targets.reduce((n, t) => n + t.devices.length, 0)} devices`);
  },
};

export const fleetCommand: CommandModule<object, object> = {
  command: 'fleet <command>',
  describe: 'Fleet controller over MQTT: devices, bench/tune/deploy/rollback jobs, rollouts, distributed tuning, results',
  builder: (y) => y
    .command(devices)
    .command(jobCommand('bench', 'Benchmark a model on the selected devices and collect the measurements'))
    .command(tune)
    .command(deploy)
    .command(jobCommand('rollback', 'Roll the selected devices back to their previous deployment'))
    .command(results)
    .command(collect)
    .command(report)
    .demandCommand(1, 'name a fleet command (see edgetune fleet --help)') as Argv<object>,
  handler: () => {},
};
