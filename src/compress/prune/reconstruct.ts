// Training-free reconstruction after channel pruning (He et al. 2017, "Channel Pruning for Accelerating Very Deep
// Neural Networks"; Luo et al. 2017, ThiNet): every layer whose input channels shrank is refitted by least squares so
// that, fed the pruned model's activations, it reproduces the original model's (the teacher's) outputs.
//
// Layers are refitted in stages, in graph order: each stage runs the teacher and the current pruned model together
// (one paired model in an ONNX Runtime child process, see paired.ts) with the needed intermediate values added as
// outputs, streams the calibration batches into per-layer normal equations, solves them and writes the weights back,
// so later stages see the refitted layers.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { throwIfAborted } from '../../errors.js';
import type { DataBatch } from '../../measure/datasets/source.js';
import { seededRandom } from '../../measure/inputs.js';
import type { PlainTensor } from '../../measure/plain-tensor.js';
import { ModelRunner, type SessionSettings } from '../../measure/runner.js';
import { valueInfo } from '../../onnx/builder.js';
import { DT } from '../../onnx/dtype.js';
import { cloneModel, saveModel, type OnnxModel } from '../../onnx/model.js';
import { pruneUnused } from '../../onnx/graph.js';
import type { GraphProto, NodeProto } from 'onnx-buf';
import type { OpContext, PassReport } from '../../types.js';
import { AgreementSums, type Agreement } from './agreement.js';
import type { SinkInfo } from './apply.js';
import { calibration, type CalibrationOptions } from './calib.js';
import { makeFit, type LayerFit } from './layers.js';
import { nodeLabel } from './tensors.js';
import { pairModels } from './paired.js';

export interface ReconstructOptions extends CalibrationOptions {
  /** how many teacher/student passes the layers are spread over (default: up to 6) */
  stages?: number;
  /**
   * Where a layer's inputs come from. `student` (default; He et al.): the pruned model as refitted in earlier stages,
   * so each stage corrects the error built up upstream; a layer downstream of another layer of its own stage reads
   * the original model's kept channels instead. `teacher` (ThiNet-style): every layer reads the original's kept
   * channels, all in one pass.
   */
  inputs?: 'student' | 'teacher';
  /** ridge strength toward the pruned weights, relative to the mean diagonal of XᵀX (default 1e-3) */
  lambda?: number;
  /** a scratch folder (default: the OS temp folder) */
  workDir?: string;
  session?: SessionSettings;
}

export interface ReconstructResult {
  report: PassReport;
  warnings: string[];
  /** output agreement with the original on the calibration examples, before and after the refit */
  fidelity: { examples: number; source: string; without?: Agreement; with?: Agreement };
}

const DEFAULT_STAGES = 6;

/** Rows of XᵀX a layer with k unknowns accumulates: enough to pin it down, bounded so k² work per row stays cheap. */
function rowBudget(k: number): number {
  return Math.min(32768, Math.max(4096, 8 * k));
}

/**
 * Refits `sinks` (from pruneChannels, whose node objects live in `student`) in place. `teacher` is the model
 * before pruning. Both are only read through copies saved to a scratch folder.
 */
export async function reconstruct(teacher: OnnxModel, student: OnnxModel, sinks: SinkInfo[], opts: ReconstructOptions = {}, ctx: OpContext = {}): Promise<ReconstructResult> {
  const report: PassReport = { pass: 'prune-reconstruct', changed: [], skipped: [] };
  const cal = calibration(teacher, opts);
  const warnings = cal.warning ? [cal.warning] : [];
  const graph = student.proto.graph!;
  const order = [...sinks].sort((a, b) => graph.node.indexOf(a.node) - graph.node.indexOf(b.node));
  const fromTeacher = opts.inputs === 'teacher';
  const nStages = fromTeacher ? 1 : Math.max(1, Math.min(order.length, opts.stages ?? DEFAULT_STAGES));
  const per = Math.ceil(order.length / nStages);
  const outputs = teacher.proto.graph!.output.map((o) => o.name);
  const fidelity: ReconstructResult['fidelity'] = { examples: cal.samples, source: cal.source };
  const dir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'edgetune-reconstruct-'));
  const session = opts.session ?? { intraOpThreads: 1 };
  const rand = seededRandom(opts.seed ?? 7);
  const batchesPer = Math.max(1, Math.ceil(cal.samples / cal.batchSize));
  try {
    for (let s = 0; s * per < order.length; s++) {
      throwIfAborted(ctx.signal, 'reconstruction');
      const stage = order.slice(s * per, (s + 1) * per);
      const fits: LayerFit[] = [];
      for (const sink of stage) {
        const f = makeFit(student, sink);
        if (typeof f === 'string') report.skipped.push({ node: nodeLabel(sink.node), op: sink.op, why: `not refitted: ${f}` });
        else fits.push(f);
      }
      if (!fits.length && s > 0) continue;
      const before = s === 0 ? new AgreementSums() : undefined;
      // A layer downstream of another layer of the same stage would fit itself to inputs that are about to change
      // (and over-correct for errors the other fit removes): it reads the teacher's inputs instead.
      const upstream = fromTeacher ? new Set(fits) : dependents(graph, fits);
      const io = {
        teacher: fits.flatMap((f) => (upstream.has(f) ? [f.sink.output, f.sink.input] : [f.sink.output])),
        student: fits.filter((f) => !upstream.has(f)).map((f) => f.sink.input),
      };
      await runTogether(teacher, student, io, join(dir, `stage-${s}`), session, cal.batches(ctx.signal), ctx, (tOut, sOut) => {
        before?.add(tOut, sOut, outputs);
        for (const f of fits) {
          const t = upstream.has(f);
          f.addBatch((t ? tOut : sOut)[f.sink.input], tOut[f.sink.output], Math.ceil(rowBudget(f.eq.k) / batchesPer), rand, t);
        }
      });
      if (before) fidelity.without = before.summary();
      for (const f of fits) solveAndWrite(f, student, opts.lambda, report);
      ctx.onProgress?.({ step: 'reconstruct', pct: (100 * Math.min(order.length, (s + 1) * per)) / (order.length + per), detail: `${Math.min(order.length, (s + 1) * per)}/${order.length} layers` });
    }
    pruneUnused(graph);
    if (report.changed.length) {
      const after = new AgreementSums();
      await runTogether(teacher, student, { teacher: [], student: [] }, join(dir, 'final'), session, cal.batches(ctx.signal), ctx, (tOut, sOut) => after.add(tOut, sOut, outputs));
      fidelity.with = after.summary();
    } else fidelity.with = fidelity.without;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  ctx.onProgress?.({ step: 'reconstruct', pct: 100 });
  if (fidelity.without && fidelity.with) {
    report.fidelity = { examples: fidelity.examples, source: fidelity.source, withoutReconstruction: fidelity.without, withReconstruction: fidelity.with };
  }
  return { report, warnings, fidelity };
}


/**
 * Runs the teacher and the student on the same batches, with extra intermediate outputs, and hands each batch's
 * outputs on under their own names. One paired model in one child process when possible, else two side by side.
 */
async function runTogether(
  teacher: OnnxModel, student: OnnxModel, extra: { teacher: string[]; student: string[] }, stem: string,
  session: SessionSettings, batches: AsyncIterable<DataBatch>, ctx: OpContext, each: (t: Outputs, s: Outputs) => void,
): Promise<void> {
  const tNames = [...teacher.proto.graph!.output.map((o) => o.name), ...extra.teacher];
  const sNames = [...student.proto.graph!.output.map((o) => o.name), ...extra.student];
  const paired = pairModels(teacher, student, extra.teacher, extra.student);
  if (paired) {
    await saveModel(paired.model, `${stem}.onnx`);
    const r = await ModelRunner.start(`${stem}.onnx`, session, ctx);
    try {
      for await (const batch of batches) {
        const out = await r.run(batch.feeds, ctx);
        each(Object.fromEntries(tNames.map((n) => [n, out[n]])), Object.fromEntries(sNames.map((n) => [n, out[paired.student(n)]])));
      }
    } finally {
      await r.close();
    }
    return;
  }
  await saveModel(withOutputs(teacher, extra.teacher), `${stem}.teacher.onnx`);
  await saveModel(withOutputs(student, extra.student), `${stem}.student.onnx`);
  await runPair(`${stem}.teacher.onnx`, `${stem}.student.onnx`, session, batches, ctx, each);
}

/** Solves one layer and keeps the result only when it fits the teacher better than the pruned weights do. */
function solveAndWrite(f: LayerFit, student: OnnxModel, lambda: number | undefined, report: PassReport): void {
  const name = nodeLabel(f.sink.node);
  if (f.eq.rows === 0) { report.skipped.push({ node: name, op: f.sink.op, why: 'not refitted: no rows were gathered' }); return; }
  const sol = f.eq.solve(f.w0, lambda ?? 1e-3);
  const e0 = f.eq.sse(f.w0), e1 = f.eq.sse(sol);
  const rel = (e: number) => (f.eq.yy > 0 ? Math.sqrt(e / f.eq.yy) : 0);
  if (!sol.every(Number.isFinite) || !(e1 < e0)) {
    report.skipped.push({ node: name, op: f.sink.op, why: `not refitted: the solution does not lower the error (relative ${rel(e0).toFixed(4)} → ${rel(e1).toFixed(4)})` });
    return;
  }
  f.write(student.proto.graph!, sol);
  report.changed.push({
    node: name, op: f.sink.op,
    what: `refitted ${f.eq.k}×${f.eq.m} from ${f.eq.rows} rows (input channels ${f.sink.inChannels.before} → ${f.sink.inChannels.after}): relative output error ${rel(e0).toFixed(4)} → ${rel(e1).toFixed(4)}`,
  });
}

/** A copy of the model that also outputs the given intermediate values. */
function withOutputs(model: OnnxModel, names: string[]): OnnxModel {
  const m = cloneModel(model);
  const g = m.proto.graph!;
  const have = new Set(g.output.map((o) => o.name));
  for (const n of new Set(names)) if (!have.has(n)) g.output.push(valueInfo(n, DT.FLOAT));
  return m;
}

/** Runs two models on the same batches side by side (two child processes) and hands each pair of outputs on. */
export async function runPair(
  aPath: string, bPath: string, session: SessionSettings, batches: AsyncIterable<DataBatch>, ctx: OpContext,
  each: (a: Outputs, b: Outputs, batch: DataBatch) => void,
): Promise<void> {
  const a = await ModelRunner.start(aPath, session, ctx);
  try {
    const b = await ModelRunner.start(bPath, session, ctx);
    try {
      for await (const batch of batches) {
        const [ao, bo] = await Promise.all([a.run(batch.feeds, ctx), b.run(batch.feeds, ctx)]);
        each(ao, bo, batch);
      }
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

type Outputs = Record<string, PlainTensor>;

/** The fits that read (directly or not) the output of another fit in the same list. */
function dependents(graph: GraphProto, fits: LayerFit[]): Set<LayerFit> {
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) if (o) producer.set(o, n);
  const members = new Set(fits.map((f) => f.sink.node));
  const out = new Set<LayerFit>();
  for (const f of fits) {
    const seen = new Set<NodeProto>();
    const stack = [f.sink.node.input[0]];
    while (stack.length) {
      const p = producer.get(stack.pop()!);
      if (!p || seen.has(p)) continue;
      seen.add(p);
      if (members.has(p)) { out.add(f); break; }
      stack.push(...p.input.filter(Boolean));
    }
  }
  return out;
}
