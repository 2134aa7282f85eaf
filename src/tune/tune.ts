// `tune`: the most accurate compression of a model that meets a latency budget on this device. The composition
// root of src/tune: builds the candidates (space.ts), the cheap proxies per model (prepare.ts), runs the search
// (search.ts + strategy.ts) with the journal (journal.ts), writes the winner, the TuneResult and the HTML report.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { EdgetuneError, UsageError, throwIfAborted } from '../errors.js';
import { loadModel, saveModel, sha256 } from '../onnx/model.js';
import { isExternal } from '../onnx/tensor.js';
import { allTensors } from '../onnx/walk.js';
import { benchModel, toMeasurement } from '../measure/bench.js';
import { generateInputs, inputSpecs } from '../measure/inputs.js';
import { prepareOutputs, writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { infinityAsString } from '../util/json.js';
import { writeTuneReport } from '../report/html.js';
import type { OpContext } from '../types.js';
import { paretoFront, qualityScore, qualityViolations, type TuneLimits } from './decide.js';
import { Journal, type ModelRecord } from './journal.js';
import { targetPriors, type LatencyFeatures } from './latency-model.js';
import { checkOptions, confirmPlan, spaceFileOf, tunePaths, SEARCH_BENCH, type TuneOptions, type TuneOutcome } from './options.js';
import { ModelStore } from './prepare.js';
import { loadEvalSet, openTuneData, skipExamples } from './quality.js';
import { runSearch, type SearchCandidate } from './search.js';
import { baselineOf, buildCandidates, candidatesFromRecipes, fitDepthwiseAxis, hash, modelKeyOf, stemKeyOf, targetFromSpace, tuneAxes, type Candidate, type SkippedCandidate, type TuneAxes } from './space.js';
import { depthwiseConvCount } from '../compress/quantize/qdq-plan.js';
import { selectStage, stageOf, type StagedKey } from './stages.js';

export type { TuneOptions, TuneOutcome } from './options.js';

const SEED = 20261123;

function featuresOf(c: Candidate, r: ModelRecord, base: ModelRecord): LatencyFeatures {
  const p = c.point;
  return {
    ...(r.macs !== undefined && base.macs ? { macsRatio: r.macs / base.macs } : {}),
    levels: {
      // Keeping depthwise convs fp32 is another quantized form, with its own speed: a level of `quant`.
      quant: p.depthwise === false ? `${p.quant}-dwfp32` : p.quant, threads: String(p.threads), prune: String(p.prune ?? 0), lowrank: String(p.lowrankEnergy ?? '-'),
      opt: p.graphOptimizationLevel ?? '-', spin: String(p.spinning ?? '-'), exec: p.executionMode ?? '-', fallback: String(p.fallback ?? 0),
    },
  };
}

/** Writes the chosen file to `output` atomically; a model with external data is re-saved so its data follows. */
async function writeModelTo(file: string, output: string): Promise<void> {
  // Its folder was made (and checked writable) by prepareOutputs when the tune started.
  const m = await loadModel(file);
  if (allTensors(m.proto).some(isExternal)) await saveModel(m, output);
  else await writeFileAtomic(output, await readFile(file));
}

/**
 * Tunes `opts.model` for the budget on this device. Cancellable at every step; a rerun with the same model, space
 * and settings replays the journal instead of measuring again.
 */
export async function tune(opts: TuneOptions, ctx: OpContext = {}): Promise<TuneOutcome> {
  const started = Date.now();
  checkOptions(opts);
  const paths = tunePaths(opts);
  await prepareOutputs([
    { path: paths.output, what: 'output' }, { path: paths.result, what: 'result' }, { path: paths.journal, what: 'journal' },
    ...(paths.report ? [{ path: paths.report, what: 'report' }] : []),
  ]);
  const cores = opts.cores ?? availableParallelism();
  const notes: string[] = [];
  const original = await loadModel(paths.input);
  const inFile = await readFile(paths.input);
  const originalSha = sha256(inFile);
  const inBytes = inFile.length;
  const target = opts.target ?? targetFromSpace(opts.space);
  const explicit = opts.candidates !== undefined;
  const data = await openTuneData(paths.input, original, opts.data);
  if (data) notes.push(...data.notes);

  // --- candidates
  const skipped: SkippedCandidate[] = [];
  let candidates: Candidate[];
  let axes: TuneAxes | undefined;
  if (explicit) candidates = candidatesFromRecipes(opts.candidates!);
  else {
    const file = await spaceFileOf(opts);
    try {
      const fitted = fitDepthwiseAxis(tuneAxes(target, cores, file), depthwiseConvCount(original.proto.graph!), file?.depthwise !== undefined);
      axes = fitted.axes;
      if (fitted.note) notes.push(fitted.note);
      const built = buildCandidates(target, axes, { ...(file?.max ? { max: file.max } : {}), reconstruct: file?.reconstruct ?? data !== undefined });
      candidates = built.candidates;
      skipped.push(...built.skipped);
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(`target ${target.name}: ${e.message}`);
      throw e;
    }
  }
  let baseline = baselineOf(candidates, target, cores);
  const baselineIsTrial = baseline !== undefined;
  baseline ??= { id: 'baseline', label: `fp32 t${cores}`, point: { quant: 'fp32', threads: cores }, recipe: { v: 1, session: { intraOpThreads: cores } }, modelKey: modelKeyOf({ quant: 'fp32', threads: 1 }), stemKey: stemKeyOf({}) };


  // --- data, journal, work folder
  const evalSet = await loadEvalSet(original, data, { samples: opts.evalSamples ?? (data ? 1000 : 16), shapes: opts.shapes, seed: SEED }, ctx);
  notes.push(...evalSet.notes);
  let calib = data?.source;
  if (data) {
    const left = data.source.count !== undefined ? data.source.count - evalSet.examples : undefined;
    if (left !== undefined && left < 32) notes.push(`${data.name} has only ${left} example(s) beyond the ${evalSet.examples} evaluated: calibration reuses the evaluation examples`);
    else calib = skipExamples(data.source, evalSet.examples);
  }
  const plan = { ...SEARCH_BENCH, ...opts.bench };
  const confirm = confirmPlan(plan, opts.confirmBench);
  const settings = hash({ data: evalSet.from, examples: evalSet.examples, shapes: opts.shapes ?? {}, plan, confirm, seed: SEED });
  const spaceKey = hash(candidates.map((c) => [c.id, c.recipe]));
  await mkdir(paths.work, { recursive: true });
  const { journal, state, notes: jnotes, resumed } = await Journal.open(paths.journal, { kind: 'header', v: 1, model: originalSha, space: spaceKey, settings });
  if (resumed) jnotes.push(`resumed: ${state.models.size} model(s), ${state.trials.size} trial(s) and ${state.confirms.size} confirmation(s) replayed from the journal`);

  const inputs = generateInputs(inputSpecs(original), { shapes: opts.shapes, seed: SEED }).tensors;
  const store = new ModelStore({ original, originalPath: paths.input, originalSha, workDir: paths.work, evalSet, ...(calib ? { calib } : {}), inputs, ...(data?.output ? { output: data.output } : {}), ...(opts.shapes ? { shapes: opts.shapes } : {}) });
  const deadline = opts.timeLimitS !== undefined ? started + opts.timeLimitS * 1000 : undefined;
  try {
    // --- cheap proxies per distinct model, stage by stage (stages.ts): compress once, evaluate once
    for (const r of state.models.values()) store.remember(r);
    const strategy = explicit ? 'exhaustive' : opts.strategy ?? 'adaptive';
    const firstOf = new Map<string, Candidate>();
    for (const c of [baseline, ...candidates]) if (!firstOf.has(c.modelKey)) firstOf.set(c.modelKey, c);
    const staged = [...firstOf.values()].map((c) => (explicit || !axes ? { key: c.modelKey, stage: 0, parents: [] } : stageOf(c.point, axes, modelKeyOf)));
    const maxStage = Math.max(...staged.map((k) => k.stage));
    const records = new Map<string, ModelRecord>();
    const known = new Map<string, number>();
    let work = 0, lastPct = 0;
    const progress = (step: string, left: number, detail: string) => {
      const pct = Math.max(lastPct, Math.min(97, (97 * work) / Math.max(1, work + left)));
      lastPct = pct;
      const perUnit = work ? (Date.now() - started) / 1000 / work : undefined;
      ctx.onProgress?.({ step, pct, ...(perUnit !== undefined ? { etaS: perUnit * left } : {}), detail });
    };
    const unprepared = () => staged.filter((k) => !records.has(k.key) && !known.has(k.key)).length;
    const prepare = async (keys: StagedKey[]): Promise<boolean> => {
      for (const k of keys) {
        throwIfAborted(ctx.signal, 'tune');
        if (deadline !== undefined && Date.now() >= deadline && records.has(baseline!.modelKey)) {
          notes.push('the time limit was reached while preparing models');
          return false;
        }
        const c = firstOf.get(k.key)!;
        progress(`prepare ${c.label.replace(/ t\d+.*$/, '')}`, unprepared(), `${records.size + 1} of ${staged.length} model(s)`);
        const old = state.models.get(k.key);
        const rec = await store.build(c, ctx, old);
        if (rec !== old) await journal.append({ kind: 'model', record: rec });
        records.set(k.key, rec);
        if (rec.status === 'ok' && rec.quality) known.set(k.key, qualityScore({ quality: rec.quality }));
        work++;
      }
      return true;
    };
    await prepare(staged.filter((k) => k.stage === 0 || strategy === 'exhaustive'));
    const baseRec = records.get(baseline.modelKey);
    if (!baseRec || baseRec.status !== 'ok' || !baseRec.quality) throw new EdgetuneError('BENCH_FAILED', `${paths.input}: the fp32 model could not be evaluated: ${baseRec?.reason ?? 'not prepared'}`);

    // --- quality rule
    const baselineAccuracy = evalSet.labelled ? baseRec.quality.accuracy : undefined;
    const metric = baselineAccuracy !== undefined ? 'accuracy' : 'fidelity';
    if (metric === 'fidelity' && opts.maxAccuracyDrop !== undefined) notes.push('--max-accuracy-drop needs labelled data (--data); the fidelity floor applies instead');
    const limits: TuneLimits = {
      latencyMs: opts.budgetMs, percentile: opts.percentile ?? 90,
      ...(opts.memoryMB !== undefined ? { memoryMB: opts.memoryMB } : {}),
      ...(metric === 'accuracy' ? { maxAccuracyDrop: opts.maxAccuracyDrop ?? 1 } : {}),
      ...(metric === 'fidelity' || opts.minFidelity !== undefined ? { minFidelity: opts.minFidelity ?? 0.99 } : {}),
    };
    // One example more or less right moves accuracy by 100/n points: past the allowed drop, the floor is noise.
    if (limits.maxAccuracyDrop !== undefined && limits.maxAccuracyDrop > 0 && 100 / evalSet.examples > limits.maxAccuracyDrop) {
      notes.push(`accuracy is measured on only ${evalSet.examples} example(s), so one example is ${(100 / evalSet.examples).toPrecision(2)} points, more than the ${limits.maxAccuracyDrop}-point drop allowed: the accuracy floor cannot tell candidates apart; give at least ${Math.ceil(100 / limits.maxAccuracyDrop)} labelled examples (or --eval-samples)`);
    }

    const all = new Map<string, SearchCandidate>();
    const searchable = (keys: Set<string>) => candidates.filter((c) => keys.has(c.modelKey)).flatMap((c): SearchCandidate[] => {
      const r = records.get(c.modelKey)!;
      if (r.status !== 'ok') {
        skipped.push({ label: c.label, why: r.status === 'duplicate' ? `duplicate: ${r.reason}` : r.reason ?? 'skipped' });
        return [];
      }
      const x = { c, record: r, features: featuresOf(c, r, baseRec), qualityOk: qualityViolations(r.quality ?? {}, limits, baselineAccuracy).length === 0 };
      all.set(c.id, x);
      return [x];
    });
    const cands = searchable(new Set(records.keys()));
    const base = all.get(baseline.id) ?? { c: baseline, record: baseRec, features: featuresOf(baseline, baseRec, baseRec), qualityOk: true };
    let nextStage = strategy === 'exhaustive' ? maxStage + 1 : 1;
    const expand = async (incumbent: number | undefined): Promise<SearchCandidate[] | undefined> => {
      while (nextStage <= maxStage) {
        const stage = nextStage++;
        const { prepare: todo, bounded } = selectStage(staged.filter((k) => k.stage === stage), known, incumbent);
        for (const { k, bound } of bounded) {
          known.set(k.key, bound);
          for (const c of candidates.filter((x) => x.modelKey === k.key)) skipped.push({ label: c.label, why: `not prepared: its less compressed parent scores ${bound.toPrecision(4)}, not above the best feasible candidate's ${incumbent!.toPrecision(4)}` });
        }
        if (!todo.length) continue;
        const finished = await prepare(todo);
        const more = searchable(new Set(todo.map((k) => k.key).filter((k) => records.has(k))));
        if (!finished) nextStage = maxStage + 1;
        if (more.length) return more;
      }
      return undefined;
    };

    // --- search
    const outcome = await runSearch({
      cands, baseline: base, baselineIsTrial, limits, ...(baselineAccuracy !== undefined ? { baselineAccuracy } : {}),
      strategy, ...(opts.pMin !== undefined ? { pMin: opts.pMin } : {}),
      priors: targetPriors(target.priors), ...(deadline !== undefined ? { deadline } : {}), replay: state,
    }, {
      measure: async (x, kind, mctx) => {
        if (!store.fileOf(x.c.modelKey)) await store.build(x.c, mctx, x.record);
        const file = store.fileOf(x.c.modelKey);
        if (!file) throw new EdgetuneError('BENCH_FAILED', `${x.c.label}: its compressed model could not be rebuilt`);
        const r = await benchModel(file, { ...(kind === 'confirm' ? confirm : plan), session: x.c.recipe.session ?? {}, inputs }, { signal: mctx.signal });
        work++;
        return { ...toMeasurement(r, x.c.recipe, x.record.quality ?? {}), label: x.c.label };
      },
      log: (e) => journal.append(e),
      expand: (inc) => expand(inc),
      progress: ({ measured, left, step }) => progress(`measure ${step}`, left + unprepared() + 1, `${measured} measured, ≤${left} left`),
    }, ctx);
    for (const c of candidates) if (!records.has(c.modelKey) && !known.has(c.modelKey)) skipped.push({ label: c.label, why: outcome.timedOut ? 'not prepared before the time limit' : 'not prepared: the search ended first' });

    // --- outputs
    const chosenCand = outcome.chosenId ? all.get(outcome.chosenId) ?? (outcome.chosenId === base.c.id ? base : undefined) : undefined;
    let output: string | undefined;
    if (chosenCand && !explicit) {
      if (!store.fileOf(chosenCand.c.modelKey)) await store.build(chosenCand.c, ctx, chosenCand.record);
      await writeModelTo(store.fileOf(chosenCand.c.modelKey)!, paths.output);
      output = paths.output;
    }
    const trials = outcome.trials;
    const result: TuneOutcome = {
      v: 1,
      device: opts.device ?? { id: 'local', target: target.name },
      model: { path: paths.input, sha256: originalSha, bytes: inBytes },
      budget: limits,
      baseline: outcome.baseline,
      chosen: outcome.chosen,
      ...(output ? { output } : {}),
      ...(!outcome.chosen && outcome.decision.infeasible ? { infeasible: outcome.decision.infeasible } : {}),
      front: paretoFront(trials, limits.percentile),
      trials,
      wallS: (Date.now() - started) / 1000,
      strategy,
      quality: { metric, from: evalSet.from, examples: evalSet.examples, ...(baselineAccuracy !== undefined ? { baselineAccuracy } : {}) },
      space: { target: target.name, candidates: candidates.length, models: staged.length, skipped },
      search: { measured: outcome.measuredNow, replayed: outcome.replayed, stopReason: outcome.stopReason, timedOut: outcome.timedOut, log: outcome.log, confirmations: outcome.confirmations, unmeasured: outcome.unmeasured },
      models: [...records.values()],
      resultPath: paths.result,
      ...(paths.report ? { report: paths.report } : {}),
      journal: { path: paths.journal, resumed, notes: jnotes },
      notes,
    };
    await writeJsonAtomic(paths.result, result, infinityAsString);
    if (paths.report) await writeTuneReport(result, paths.report);
    await journal.close();
    if (!opts.keepWork) await rm(paths.work, { recursive: true, force: true });
    ctx.onProgress?.({ step: 'done', pct: 100 });
    return result;
  } finally {
    await journal.close().catch(() => {});
  }
}
