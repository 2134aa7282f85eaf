// Result documents arrive as JSON from devices we do not control: read them leniently into the few figures
// a fleet table needs, and say "unknown" (undefined) rather than inventing a number.
import type { Measurement, Quality, TuneResult } from '../types.js';
import { recipeLabel } from '../schema/recipe.js';
import type { Recipe } from '../types.js';
import { numberOrInfinity } from '../util/json.js';

export type ResultKind = 'tune' | 'bench' | 'deploy' | 'other';

export interface ResultSummary {
  kind: ResultKind;
  label?: string;
  latencyP50?: number;
  latencyP90?: number;
  accuracy?: number;
  sqnrDb?: number;
  /** tune only: false when no candidate met the budget. */
  chosen?: boolean;
  /** The device said it ran a simulated (fake) workload. */
  simulated: boolean;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function isMeasurement(doc: unknown): doc is Measurement {
  return isObject(doc) && isObject(doc.latencyMs) && isObject(doc.recipe);
}

export function isTuneResult(doc: unknown): doc is TuneResult {
  return isObject(doc) && isObject(doc.budget) && Array.isArray(doc.trials);
}

/**
 * A Measurement as it came over JSON, with what JSON lost put back: SQNR is Infinity when a candidate's output
 * equals fp32 exactly. MQTT results carry it as null (JSON.stringify's default); a TuneResult file or `tune --json`
 * as the string "Infinity" (util/json.ts).
 */
export function restoreMeasurement(m: Measurement): Measurement {
  const q = m.quality as Quality & { sqnrDb?: number | string | null };
  if (q && q.sqnrDb === null) return { ...m, quality: { ...q, sqnrDb: Infinity } };
  if (q && typeof q.sqnrDb === 'string') {
    const n = numberOrInfinity(q.sqnrDb);
    const { sqnrDb: _drop, ...rest } = q;
    return { ...m, quality: n === undefined ? rest : { ...rest, sqnrDb: n } };
  }
  return m;
}

function fromMeasurement(m: Measurement): Omit<ResultSummary, 'kind' | 'simulated'> {
  return {
    label: typeof m.label === 'string' ? m.label : recipeLabel(m.recipe),
    latencyP50: num(m.latencyMs?.p50),
    latencyP90: num(m.latencyMs?.p90),
    accuracy: num(m.quality?.accuracy),
    sqnrDb: num(m.quality?.sqnrDb),
  };
}

export function summarizeResult(doc: unknown): ResultSummary {
  const simulated = isObject(doc) && doc.simulated === true;
  if (isTuneResult(doc)) {
    const pick = doc.chosen ?? doc.infeasible?.best;
    return { kind: 'tune', simulated, chosen: doc.chosen !== null && doc.chosen !== undefined, ...(isMeasurement(pick) ? fromMeasurement(pick) : {}) };
  }
  if (isMeasurement(doc)) return { kind: 'bench', simulated, ...fromMeasurement(doc) };
  if (isObject(doc) && isObject(doc.deployed)) {
    const r = doc.deployed.recipe;
    return { kind: 'deploy', simulated, ...(isObject(r) ? { label: recipeLabel(r as Recipe) } : {}) };
  }
  return { kind: 'other', simulated };
}
