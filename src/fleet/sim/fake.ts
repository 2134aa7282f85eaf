// SIMULATED workloads for the fleet simulator. Nothing here runs a model: latencies and accuracies come from a
// small made-up formula (per simulated board, per recipe, with a per-device wobble) so that controller code
// can be exercised at fleet scale. Every document built here says `simulated: true` and every label starts
// with "sim:". Never mistake these numbers for measurements.
import { createHash } from 'node:crypto';
import type { DeviceProfile, IsaFeature, LatencyStats, Measurement, Recipe } from '../../types.js';
import { recipeLabel } from '../../schema/recipe.js';

export interface SimKind {
  /** The target the profile below matches in targets/ (for the reader; the controller matches it itself). */
  target: string;
  arch: 'arm64' | 'x64';
  board: string;
  isa: IsaFeature[];
  cores: number;
  /** fp32, one thread, the made-up model: milliseconds. */
  baseMs: number;
  /** Latency factor of int8 (dynamic/static) on this CPU: small with dot products, near 1 without. */
  int8: number;
}

export const SIM_KINDS: Record<string, SimKind> = {
  'raspberry-pi-4': { target: 'raspberry-pi-4', arch: 'arm64', board: 'Raspberry Pi 4 Model B Rev 1.5 (simulated)', isa: ['neon'], cores: 4, baseMs: 40, int8: 0.85 },
  'raspberry-pi-5': { target: 'raspberry-pi-5', arch: 'arm64', board: 'Raspberry Pi 5 Model B Rev 1.0 (simulated)', isa: ['neon', 'dotprod', 'fp16'], cores: 4, baseMs: 14, int8: 0.55 },
  'jetson-orin-nano': { target: 'jetson-orin-nano', arch: 'arm64', board: 'NVIDIA Jetson Orin Nano Developer Kit (simulated)', isa: ['neon', 'dotprod', 'fp16'], cores: 6, baseMs: 12, int8: 0.55 },
  'x86_64-avx2': { target: 'x86_64-avx2', arch: 'x64', board: 'Simulated x86 gateway', isa: ['sse4_2', 'avx', 'avx2', 'fma'], cores: 4, baseMs: 5, int8: 0.6 },
};

/** A value in [0, 1) fixed by the text (device ids, recipe labels): the same device always wobbles the same way. */
export function unitHash(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

export function simProfile(kind: SimKind, device: string): DeviceProfile {
  return {
    v: 1,
    id: `sim-${device}`,
    board: kind.board,
    arch: kind.arch,
    cpu: { model: 'SIMULATED CPU', cores: kind.cores, clustersMHz: [], isa: kind.isa },
    memory: { totalMB: 4096, availableMB: 3000 },
    accelerators: [],
    thermal: {},
    os: 'simulated',
    runtime: { node: process.version, providers: ['cpu'] },
    notes: ['SIMULATED device from edgetune fleet-sim: no hardware was probed'],
  };
}

/** The made-up accuracy of a recipe on the made-up model (fp32: 0.912). */
export function simAccuracy(r: Recipe): number {
  let acc = 0.912;
  const q = r.quantize;
  if (q?.mode === 'dynamic') acc -= 0.004;
  else if (q?.mode === 'static') acc -= 0.006;
  else if (q?.mode === 'weight-only') acc -= (q.bits ?? 4) === 4 ? 0.011 : 0.002;
  else if (q?.mode === 'fp16') acc -= 0.0004;
  if (r.prune) acc -= 0.08 * r.prune.ratio ** 1.5;
  if (r.lowrank?.energy !== undefined) acc -= 0.3 * (1 - r.lowrank.energy);
  return Number(acc.toFixed(4));
}

export function simLatencyMs(kind: SimKind, r: Recipe, device: string): number {
  const q = r.quantize;
  let f = 1;
  if (q?.mode === 'dynamic' || q?.mode === 'static') f *= kind.int8;
  else if (q?.mode === 'weight-only') f *= 0.8;
  if (r.prune) f *= 1 - 0.7 * r.prune.ratio;
  if (r.lowrank?.energy !== undefined) f *= 0.6 + 0.4 * r.lowrank.energy;
  const threads = Math.min(r.session?.intraOpThreads ?? kind.cores, kind.cores);
  const wobble = 0.95 + 0.1 * unitHash(device);
  return kind.baseMs * f * threads ** -0.75 * wobble;
}

function stats(ms: number): LatencyStats {
  const r = (x: number) => Number(x.toFixed(4));
  return { p50: r(ms), p90: r(ms * 1.08), p95: r(ms * 1.12), p99: r(ms * 1.2), mean: r(ms * 1.02), std: r(ms * 0.04), cv: 0.04, n: 100, ci95p50: [r(ms * 0.98), r(ms * 1.02)] };
}

export type SimMeasurement = Measurement & { simulated: true };

export function simMeasurement(kind: SimKind, r: Recipe, device: string, model: string): SimMeasurement {
  const label = recipeLabel(r);
  const bytes = Math.round(4_000_000 * (r.quantize?.mode === 'dynamic' || r.quantize?.mode === 'static' ? 0.26 : r.quantize?.mode === 'fp16' ? 0.51 : r.quantize?.mode === 'weight-only' ? 0.3 : 1) * (r.prune ? 1 - r.prune.ratio : 1));
  const q = r.quantize;
  return {
    v: 1,
    recipe: r,
    label: `sim:${label}`,
    model: { sha256: createHash('sha256').update(`${model}|${label.replace(/ t\d+$/, '')}`).digest('hex'), bytes },
    latencyMs: stats(simLatencyMs(kind, r, device)),
    loadMs: 5,
    firstRunMs: 10,
    peakRssMB: 50,
    throttled: false,
    quality: {
      accuracy: simAccuracy(r),
      sqnrDb: !q && !r.prune && !r.lowrank ? Infinity : q?.mode === 'fp16' ? 70 : 30 - (r.prune ? 10 * r.prune.ratio : 0),
    },
    simulated: true,
  };
}
