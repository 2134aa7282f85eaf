import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpuTemperature, probeThermalZones } from './device.js';
import { probeThrottleFlags, readText } from './probes.js';
import { parseMeminfo } from './sysfs.js';
import { isThrottledNow } from './throttle.js';

/**
 * What the agent's heartbeat reports: temperature, load, memory and throttling. Unknowns are absent with a
 * note, as in the profile.
 */
export interface Health {
  v: 1;
  ts: string;
  tempC?: number;
  /** 1-minute load average. */
  load1?: number;
  memAvailableMB?: number;
  /** Raspberry Pi firmware "now" bits; absent on boards without that interface. */
  throttled?: boolean;
  notes: string[];
  /** What this probe cost (ms): it must stay light enough to run every heartbeat (budget 20 ms). */
  costMs: number;
}

/** "0.52 0.58 0.59 1/467 12345" → 0.52. */
export function parseLoadavg(text: string): number | undefined {
  const n = Number(text.trim().split(/\s+/)[0]);
  return text.trim() !== '' && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * The light probe: a handful of small /proc and /sys reads, no child processes (vcgencmd and tegrastats cost
 * more than the budget), no systeminformation. `root` reads a recorded tree, as profileDevice does.
 */
export async function healthProbe(opts: { root?: string; now?: () => Date } = {}): Promise<Health> {
  const t0 = performance.now();
  const root = resolve(opts.root ?? '/');
  const live = root === resolve('/');
  const notes: string[] = [];
  const [zones, memText, loadText, flags] = await Promise.all([
    probeThermalZones(root),
    readText(root, 'proc/meminfo'),
    live ? Promise.resolve(undefined) : readText(root, 'proc/loadavg'),
    probeThrottleFlags(root),
  ]);
  const tempC = cpuTemperature(zones);
  if (tempC === undefined) notes.push('thermal: temperature unknown (no thermal zone)');
  const load1 = live ? loadavg()[0] : loadText === undefined ? undefined : parseLoadavg(loadText);
  if (load1 === undefined) notes.push('load: unknown (/proc/loadavg unreadable)');
  const mem = memText === undefined ? {} : parseMeminfo(memText);
  if (mem.availableMB === undefined) notes.push('memory: available unknown (no MemAvailable in /proc/meminfo)');
  if (!flags) notes.push('thermal: throttling state unknown (only Raspberry Pi firmware reports it)');
  return {
    v: 1,
    ts: (opts.now?.() ?? new Date()).toISOString(),
    ...(tempC !== undefined ? { tempC } : {}),
    ...(load1 !== undefined ? { load1 } : {}),
    ...(mem.availableMB !== undefined ? { memAvailableMB: mem.availableMB } : {}),
    ...(flags ? { throttled: isThrottledNow(flags) } : {}),
    notes,
    costMs: Math.round((performance.now() - t0) * 100) / 100,
  };
}
