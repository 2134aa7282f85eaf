// Job handlers of a SIMULATED device: real job parsing, queueing, cancellation and progress (the agent's
// JobRunner runs them), with fake workloads: sleeping instead of measuring, made-up numbers from ./fake.ts.
import { Type } from '@sinclair/typebox';
import { createHash } from 'node:crypto';
import { sleep, systemClock, type Clock } from '../../agent/clock.js';
import type { HandlerMap } from '../../agent/jobs.js';
import { EdgetuneError } from '../../errors.js';
import { decide, paretoFront } from '../../tune/decide.js';
import type { Recipe, Target, TuneResult } from '../../types.js';
import { BenchParamsSchema, DeployParamsSchema, RollbackParamsSchema, TuneParamsSchema, type BenchParams, type DeployedDoc, type DeployParams, type TuneParams } from '../contract.js';
import { targetCandidates } from '../distributed.js';
import { simMeasurement, simProfile, type SimKind } from './fake.js';

export interface SimBehaviour {
  /** Fake work per bench, per tune candidate and per deploy, in ms (sleeping on the job's signal). */
  costMs: number;
  /** Fake cost of the fp32 reference run a share needs when fp32 is not in it, as a fraction of costMs. */
  referenceCost?: number;
  /** Deploys fail (FAILED with a SIMULATED reason). */
  failDeploy?: boolean;
  /** The device goes away (offline, job left unanswered) this long after a job of this type starts. */
  crashOn?: { type: string; afterMs: number };
}

export interface SimDeps {
  device: string;
  kind: SimKind;
  behaviour: SimBehaviour;
  /** The target, for a tune without an explicit candidate list (its grid, as the real tuner builds it). */
  target?: Target;
  clock?: Clock;
  /** Republishes the retained deployed document. */
  publishDeployed: (doc: DeployedDoc) => void;
  /** Simulates the device vanishing. */
  crash: () => void;
  state: { deployed?: DeployedDoc };
}

export function simHandlers(d: SimDeps): HandlerMap {
  const clock = d.clock ?? systemClock;
  const maybeCrash = (type: string) => {
    const c = d.behaviour.crashOn;
    if (c?.type === type) clock.setTimeout(() => d.crash(), c.afterMs);
  };
  return {
    profile: { params: Type.Object({}), run: async () => ({ ...simProfile(d.kind, d.device), simulated: true }) },
    bench: {
      params: BenchParamsSchema,
      run: async (params, ctx) => {
        const p = params as BenchParams;
        maybeCrash('bench');
        ctx.onProgress?.({ step: 'SIMULATED bench', pct: 0 });
        await sleep(clock, d.behaviour.costMs, ctx.signal);
        return simMeasurement(d.kind, p.recipe ?? d.state.deployed?.recipe ?? { v: 1 }, d.device, p.model);
      },
    },
    tune: {
      params: TuneParamsSchema,
      run: async (params, ctx) => {
        const p = params as TuneParams;
        maybeCrash('tune');
        const started = clock.now();
        const list: Recipe[] = p.candidates ?? targetCandidates(d.target, d.kind.cores);
        const isFp32 = (r: Recipe) => !r.quantize && !r.prune && !r.lowrank;
        if (!list.some(isFp32)) {
          ctx.onProgress?.({ step: 'SIMULATED fp32 reference', pct: 0 });
          await sleep(clock, d.behaviour.costMs * (d.behaviour.referenceCost ?? 0.1), ctx.signal);
        }
        const trials = [];
        for (const [i, r] of list.entries()) {
          ctx.onProgress?.({ step: `SIMULATED measure (${i + 1}/${list.length})`, pct: (100 * i) / list.length });
          await sleep(clock, d.behaviour.costMs, ctx.signal);
          trials.push(simMeasurement(d.kind, r, d.device, p.model));
        }
        const budget = { latencyMs: p.budgetMs, percentile: p.percentile, ...(p.memoryMB !== undefined ? { memoryMB: p.memoryMB } : {}) };
        const decision = decide(trials, budget);
        const result: TuneResult & { simulated: true } = {
          v: 1,
          device: { id: d.device, target: d.kind.target },
          model: { path: p.model, sha256: fakeSha(p.model), bytes: 4_000_000 },
          budget,
          baseline: trials.find((m) => isFp32(m.recipe)) ?? simMeasurement(d.kind, { v: 1 }, d.device, p.model),
          chosen: decision.chosen,
          ...(decision.infeasible ? { infeasible: decision.infeasible } : {}),
          front: paretoFront(trials, p.percentile),
          trials,
          wallS: (clock.now() - started) / 1000,
          simulated: true,
        };
        return result;
      },
    },
    deploy: {
      params: DeployParamsSchema,
      run: async (params, ctx) => {
        const p = params as DeployParams;
        maybeCrash('deploy');
        const cur = d.state.deployed;
        // Like the agent: the model already active, sent again without a recipe, is a no-op.
        if (cur && !p.recipe && cur.model.sha256 === p.sha256) return { v: 1, deployed: cur, unchanged: true, simulated: true };
        ctx.onProgress?.({ step: 'SIMULATED deploy', pct: 0 });
        await sleep(clock, d.behaviour.costMs, ctx.signal);
        if (d.behaviour.failDeploy) throw new EdgetuneError('JOB_FAILED', `SIMULATED deploy failure on ${d.device} (fleet-sim --fail-deploy)`);
        const doc: DeployedDoc = {
          v: 1,
          // Like a real device: a compressing recipe makes a new file (here a made-up hash of it).
          model: { sha256: compresses(p.recipe) ? fakeSha(`${p.sha256}|${JSON.stringify(p.recipe)}`) : p.sha256, path: p.model ?? p.url ?? `transfer:${p.transfer?.id}` },
          ...(p.recipe ? { recipe: p.recipe } : {}),
          since: new Date(clock.now()).toISOString(),
          ...(cur ? { previous: { model: cur.model, ...(cur.recipe ? { recipe: cur.recipe } : {}), since: cur.since } } : {}),
          simulated: true,
        };
        d.state.deployed = doc;
        d.publishDeployed(doc);
        return { v: 1, deployed: doc, simulated: true };
      },
    },
    rollback: {
      params: RollbackParamsSchema,
      run: async (_params, ctx) => {
        maybeCrash('rollback');
        await sleep(clock, d.behaviour.costMs / 2, ctx.signal);
        const prev = d.state.deployed?.previous;
        if (!prev) throw new EdgetuneError('JOB_FAILED', `nothing to roll back to on ${d.device}: no previous deployment`);
        const doc: DeployedDoc = { v: 1, model: prev.model, ...(prev.recipe ? { recipe: prev.recipe } : {}), since: new Date(clock.now()).toISOString(), simulated: true };
        d.state.deployed = doc;
        d.publishDeployed(doc);
        return { v: 1, deployed: doc, simulated: true };
      },
    },
  };
}

const compresses = (r: Recipe | undefined) => Boolean(r && (r.prune || r.lowrank || r.quantize));

function fakeSha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
