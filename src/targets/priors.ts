import type { Target } from '../types.js';

// Peak throughput from a target's sourced per-core, per-cycle priors. Theoretical peaks, not predictions:
// they order expectations (is int8 worth 4× here or 1×?) and are never reported as measurements.

export interface PeakThroughput {
  fp32Gflops?: number;
  int8Gops?: number;
  /** int8 peak over fp32 peak: ≈4 with dot-product instructions, ≈1 without. */
  int8OverFp32?: number;
  notes: string[];
}

const numberPrior = (t: Target, key: string): number | undefined => {
  const v = t.priors[key];
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
};

/** cores × GHz × ops per cycle, with the device's own core count and clock when given (else the target's). */
export function peakThroughput(t: Target, device: { cores?: number; maxMHz?: number } = {}): PeakThroughput {
  const notes: string[] = [];
  const cores = device.cores ?? numberPrior(t, 'cores');
  const mhz = device.maxMHz ?? numberPrior(t, 'cpuMaxMHz');
  const fp32 = numberPrior(t, 'fp32FlopsPerCycle');
  const int8 = numberPrior(t, 'int8OpsPerCycle');
  if (cores === undefined) notes.push('core count unknown');
  if (mhz === undefined) notes.push('clock unknown');
  if (fp32 === undefined) notes.push(`target ${t.name} states no fp32FlopsPerCycle prior`);
  if (int8 === undefined) notes.push(`target ${t.name} states no int8OpsPerCycle prior`);
  const peak = (perCycle?: number) => (perCycle !== undefined && cores !== undefined && mhz !== undefined ? Math.round((perCycle * cores * mhz) / 100) / 10 : undefined);
  const out: PeakThroughput = { notes };
  const f = peak(fp32);
  const i = peak(int8);
  if (f !== undefined) out.fp32Gflops = f;
  if (i !== undefined) out.int8Gops = i;
  if (fp32 !== undefined && int8 !== undefined) out.int8OverFp32 = int8 / fp32;
  return out;
}
