// The `deploy` and `rollback` jobs. A deploy is a fixed sequence of steps (balena's composition steps, Mender's
// install/commit): fetch → verify (sha256, ed25519) → stage (into the content-addressed store) → [compress with the
// job's recipe] → check (load and benchmark in a work process) → activate (pending) → confirm (re-hash through the
// active link) → commit. A model that fails to load or misses the budget is never made active; one that fails the
// confirmation is rolled back at once; a crash before commit is rolled back at the next start. The job is
// idempotent, so the runner may run it again after a crash: a partial download resumes and finished steps are
// found done.
import type { KeyObject } from 'node:crypto';
import { EdgetuneError, errorMessage, throwIfAborted } from '../../errors.js';
import type { DeployConfig } from '../../schema/config.js';
import type { OpContext } from '../../types.js';
import type { HandlerSpec, JobContext } from '../jobs.js';
import type { Logger } from '../log.js';
import { DeployParamsSchema, RollbackParamsSchema, type DeployParams } from '../params.js';
import { jobPath, pathIssues, type AllowedRoots } from '../paths.js';
import { AgentJobError } from '../runner.js';
import type { Work } from '../work/worker.js';
import type { CheckModelArgs, CheckModelResult, CompressTaskArgs } from '../work/tasks.js';
import { discard, fetchSource, redact, type DeploySource } from './fetch.js';
import { verifyModelSignature } from './signature.js';
import { sha256File, type DeployedDoc, type ModelRecord, type ModelStore } from './store.js';
import type { TransferStore } from './transfer.js';

export { DeployParamsSchema, RollbackParamsSchema, type DeployParams } from '../params.js';

export interface DeployDeps {
  store: ModelStore;
  transfers: TransferStore;
  config: DeployConfig;
  /** Loaded from config.deploy.publicKey at start. */
  publicKey?: KeyObject;
  roots: AllowedRoots;
  log: Logger;
  work: Work;
  /** Publishes the retained deployed document. */
  onDeployed: (doc: DeployedDoc | undefined) => void;
  now?: () => Date;
}

export interface DeployResult {
  v: 1;
  deployed: DeployedDoc;
  /** Load time and latency measured before activation. */
  check?: CheckModelResult;
  /** True when the model was already active (a re-sent or re-run job). */
  unchanged?: boolean;
}

export function deployHandlers(d: DeployDeps): { deploy: HandlerSpec; rollback: HandlerSpec } {
  return {
    deploy: {
      params: DeployParamsSchema,
      validate: (params) => validateDeploy(params as DeployParams, d),
      run: async (params, ctx) => {
        const p = params as DeployParams;
        const job = currentJobId(ctx);
        try {
          return await runDeploy(p, d, ctx, job);
        } catch (e) {
          // A failed job ends for good (its id never runs again), so its partial download serves nobody. An aborted
          // one may be an agent stop, after which the job runs again and resumes from it: gc() decides later.
          if (!ctx.signal?.aborted) await d.store.discardStaging(stagingTag(p, job));
          throw e;
        }
      },
    },
    rollback: {
      params: RollbackParamsSchema,
      run: async (_params, ctx) => {
        throwIfAborted(ctx.signal, 'rollback');
        const job = currentJobId(ctx);
        if (job && d.store.active?.job === job) return { v: 1, deployed: d.store.deployedDoc()!, unchanged: true };
        if (!(await d.store.rollback(job, d.now?.()))) {
          throw new EdgetuneError('JOB_FAILED', 'nothing to roll back to: this device has no previous model');
        }
        const doc = d.store.deployedDoc()!;
        d.log.warn('rolled back to the previous model', { model: doc.model.sha256 });
        d.onDeployed(doc);
        return { v: 1, deployed: doc };
      },
    },
  };
}

function currentJobId(ctx: JobContext): string | undefined {
  return ctx.jobId;
}

/** Staging files are named after the job, so a re-run of the same job after a crash finds its partial download. */
function stagingTag(p: DeployParams, job: string | undefined): string {
  return job ?? p.sha256.slice(0, 16);
}

export function validateDeploy(p: DeployParams, d: Pick<DeployDeps, 'config' | 'publicKey' | 'roots'>): string[] {
  const issues: string[] = [];
  const sources = (['model', 'url', 'transfer'] as const).filter((k) => p[k] !== undefined);
  if (sources.length !== 1) issues.push(`/params: name exactly one source (model, url or transfer), not ${sources.length ? sources.join(' and ') : 'none'}`);
  issues.push(...pathIssues({ model: p.model }, d.roots));
  if (p.url !== undefined && p.url.startsWith('http://') && !d.config.allowHttp) {
    issues.push('/params/url: plain http is refused (deploy.allowHttp is false); use https');
  }
  if (p.transfer && p.transfer.bytes > d.config.maxModelBytes) {
    issues.push(`/params/transfer/bytes: ${p.transfer.bytes} is over deploy.maxModelBytes (${d.config.maxModelBytes})`);
  }
  if (p.signature === undefined && (d.publicKey || d.config.requireSignature)) {
    issues.push('/params/signature: this device only takes signed models (deploy.publicKey is set); sign the sha256 with the fleet key');
  }
  return issues;
}

async function runDeploy(p: DeployParams, d: DeployDeps, ctx: OpContext, job: string | undefined): Promise<DeployResult> {
  const { store } = d;
  const step = (name: string, pct: number) => ctx.onProgress?.({ step: name, pct });
  const tag = stagingTag(p, job);
  const part = store.stagingPath(tag, 'part');

  // Chunks sent for a model this device already holds are never read: drop them, or they would hold one of the
  // few transfer slots until they expire.
  const dropTransfer = async () => { if (p.transfer) await d.transfers.remove(p.transfer.id); };

  // A re-run after a crash past commit, or the same model sent again: nothing to do.
  if (store.active && !store.pending && (store.active.job === job || (!p.recipe && store.active.sha256 === p.sha256))) {
    await dropTransfer();
    return { v: 1, deployed: store.deployedDoc()!, unchanged: true };
  }

  // fetch + verify (skipped when the store already holds this exact file)
  if (!(await store.has(p.sha256))) {
    step('fetch', 0);
    const src: DeploySource = p.model !== undefined ? { kind: 'file', path: jobPath(p.model, d.roots, 'model') }
      : p.url !== undefined ? { kind: 'url', url: p.url }
      : { kind: 'transfer', ...p.transfer! };
    await fetchSource(src, part, { transfers: d.transfers, maxBytes: d.config.maxModelBytes, stallTimeoutS: d.config.downloadTimeoutS }, {
      signal: ctx.signal,
      onProgress: (pr) => step(pr.step, pr.pct * 0.4),
    });
    step('verify', 40);
    const got = await sha256File(part, ctx.signal);
    if (got.sha256 !== p.sha256) {
      await discard(part);
      const where = src.kind === 'url' ? redact(src.url) : src.kind === 'file' ? src.path : `transfer ${src.id}`;
      throw new AgentJobError('DEPLOY_REFUSED', `/params/sha256: ${where} has sha256 ${got.sha256} (${got.bytes} bytes), not ${p.sha256}; nothing was changed`);
    }
    checkSignature(p, d);
    await store.importFile(part, p.sha256);
    if (src.kind === 'transfer') await d.transfers.remove(src.id);
  } else {
    checkSignature(p, d);
    await dropTransfer();
  }
  throwIfAborted(ctx.signal, 'deploy');

  // optional on-device compression: the candidate is its own blob
  let sha = p.sha256;
  let bytes = (await sha256File(store.blobPath(sha), ctx.signal)).bytes;
  // A recipe of session settings only (a winner that is plain fp32) changes no bytes: nothing to compress.
  if (p.recipe && (p.recipe.prune || p.recipe.lowrank || p.recipe.quantize)) {
    step('compress', 45);
    const out = store.stagingPath(tag, 'compressed');
    const args: CompressTaskArgs = { input: store.blobPath(p.sha256), output: out, recipe: p.recipe };
    await d.work('compress', args, { signal: ctx.signal, onProgress: (pr) => step(`compress: ${pr.step}`, 45 + pr.pct * 0.2) });
    const got = await sha256File(out, ctx.signal);
    await store.importFile(out, got.sha256);
    sha = got.sha256;
    bytes = got.bytes;
  }

  // check: load and benchmark before anything changes
  step('load and benchmark', 65);
  const prev = store.active;
  const keeping = prev ? `the previous model ${prev.sha256.slice(0, 12)}… stays active` : 'no model is active';
  let check: CheckModelResult;
  try {
    // Measured with the recipe's session settings: those are what the application will run it with.
    const args: CheckModelArgs = { path: store.blobPath(sha), budget: p.budget, maxMs: d.config.benchMaxS * 1000, ...(p.recipe?.session ? { session: p.recipe.session } : {}) };
    check = await d.work<CheckModelResult>('check-model', args, {
      signal: ctx.signal,
      onProgress: (pr) => step(`check: ${pr.step}`, 65 + pr.pct * 0.25),
    });
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    await store.gc();
    throw new AgentJobError('DEPLOY_ROLLED_BACK', `the new model ${sha.slice(0, 12)}… failed to load or run: ${errorMessage(e)}; ${keeping}`);
  }
  if (check.meetsBudget === false) {
    await store.gc();
    throw new AgentJobError('DEPLOY_ROLLED_BACK', `the new model ${sha.slice(0, 12)}… misses the budget: p${p.budget!.percentile} ${check.measuredMs!.toFixed(2)} ms > ${p.budget!.latencyMs} ms; ${keeping}`);
  }
  throwIfAborted(ctx.signal, 'deploy');

  // activate (pending) → confirm → commit
  step('activate', 92);
  const rec: ModelRecord = {
    sha256: sha, bytes, since: (d.now?.() ?? new Date()).toISOString(),
    ...(p.name ? { name: p.name } : {}), ...(p.recipe ? { recipe: p.recipe } : {}), ...(job ? { job } : {}),
  };
  await store.activate(rec);
  const seen = await sha256File(store.activeLink).catch((e) => ({ sha256: `unreadable (${errorMessage(e)})`, bytes: 0 }));
  if (seen.sha256 !== sha) {
    await store.rollbackPending();
    d.onDeployed(store.deployedDoc());
    throw new AgentJobError('DEPLOY_ROLLED_BACK', `after activation ${store.activeLink} reads as ${seen.sha256}, not ${sha}; rolled back (${keeping})`);
  }
  await store.commit();
  const deployed = store.deployedDoc()!;
  d.log.info('model deployed', { model: sha, previous: prev?.sha256 });
  d.onDeployed(deployed);
  step('done', 100);
  return { v: 1, deployed, check };
}

function checkSignature(p: DeployParams, d: DeployDeps): void {
  if (!d.publicKey) return;
  if (p.signature === undefined || !verifyModelSignature(p.sha256, p.signature, d.publicKey)) {
    throw new AgentJobError('DEPLOY_REFUSED', `/params/signature: not a valid signature of model ${p.sha256} by the configured deploy.publicKey; nothing was changed`);
  }
}
