import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readText } from './probes.js';
import type { CacheInfo, CpuCluster } from './types.js';

// CPU clusters (big.LITTLE), governors and caches from /sys/devices/system/cpu. The pure functions take
// what was read; the probe at the bottom does the reading.

export interface CpuFacts {
  cpu: number;
  coreType?: string;
  maxMHz?: number;
  governor?: string;
}

/**
 * Groups CPUs that share core type, top frequency and governor, in order of their first CPU. On a
 * big.LITTLE part that gives one entry per cluster; on a homogeneous part, one entry.
 */
export function groupClusters(cpus: CpuFacts[]): CpuCluster[] {
  const groups = new Map<string, CpuCluster>();
  for (const c of [...cpus].sort((a, b) => a.cpu - b.cpu)) {
    const key = `${c.coreType ?? '?'}|${c.maxMHz ?? '?'}|${c.governor ?? '?'}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        cpus: [],
        ...(c.coreType ? { coreType: c.coreType } : {}),
        ...(c.maxMHz !== undefined ? { maxMHz: c.maxMHz } : {}),
        ...(c.governor ? { governor: c.governor } : {}),
      };
      groups.set(key, g);
    }
    g.cpus.push(c.cpu);
  }
  return [...groups.values()];
}

/** "0-3,6,8-9" → [0,1,2,3,6,8,9]; junk gives []. */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return [];
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi - lo > 4096) return [];
    for (let i = lo; i <= hi; i++) out.push(i);
  }
  return out;
}

/** "32K", "1024K", "2048 KB", "4M" → KB. */
export function parseSysfsSize(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([KMG])?B?\s*$/i.exec(text);
  if (!m) return undefined;
  const mult = { K: 1, M: 1024, G: 1024 * 1024 }[(m[2] ?? 'K').toUpperCase() as 'K' | 'M' | 'G'];
  const kb = Number(m[1]) * mult;
  return kb > 0 ? kb : undefined;
}

export interface CacheEntry {
  level: string;
  type: string;
  size: string;
  sharedCpuList: string;
}

const TYPES: Record<string, CacheInfo['type']> = { data: 'data', instruction: 'instruction', unified: 'unified' };

/**
 * Per-CPU sysfs cache entries → distinct caches (level, type, size) with how many instances exist (distinct
 * shared_cpu_list sets) and how many CPUs share each. Unreadable entries are skipped.
 */
export function cachesFromSysfs(entries: CacheEntry[]): CacheInfo[] {
  const byKey = new Map<string, { info: Omit<CacheInfo, 'instances' | 'sharedBy'>; sets: Set<string>; shared: number }>();
  for (const e of entries) {
    const level = Number(e.level.trim());
    const type = TYPES[e.type.trim().toLowerCase()];
    const sizeKB = parseSysfsSize(e.size);
    const cpus = parseCpuList(e.sharedCpuList);
    if (!Number.isInteger(level) || level < 1 || !type || sizeKB === undefined) continue;
    const key = `${level}|${type}|${sizeKB}`;
    let g = byKey.get(key);
    if (!g) byKey.set(key, (g = { info: { level, type, sizeKB }, sets: new Set(), shared: cpus.length }));
    if (cpus.length) g.sets.add(cpus.join(','));
  }
  const order = { data: 0, instruction: 1, unified: 2 };
  return [...byKey.values()]
    .map((g) => ({ ...g.info, ...(g.sets.size ? { instances: g.sets.size } : {}), ...(g.shared ? { sharedBy: g.shared } : {}) }))
    .sort((a, b) => a.level - b.level || order[a.type] - order[b.type]);
}

async function list(root: string, rel: string): Promise<string[]> {
  try {
    return await readdir(join(root, rel));
  } catch {
    return [];
  }
}

/**
 * Reads cpufreq and cache facts for every cpuN under the root. `coreTypes[i]` is CPU i's core type from
 * cpuinfo (ARM); `cpuCount` covers roots that list CPUs in cpuinfo but have no sysfs entries.
 */
export async function probeTopology(
  root: string,
  coreTypes: Array<string | undefined>,
  cpuCount: number | undefined,
): Promise<{ clusters: CpuCluster[]; caches: CacheInfo[] }> {
  const base = 'sys/devices/system/cpu';
  let cpus = (await list(root, base)).filter((n) => /^cpu\d+$/.test(n)).map((n) => Number(n.slice(3)));
  if (!cpus.length && cpuCount) cpus = Array.from({ length: cpuCount }, (_, i) => i);
  cpus.sort((a, b) => a - b);
  const facts = await Promise.all(
    cpus.map(async (cpu): Promise<CpuFacts> => {
      const [max, gov] = await Promise.all([
        readText(root, `${base}/cpu${cpu}/cpufreq/cpuinfo_max_freq`),
        readText(root, `${base}/cpu${cpu}/cpufreq/scaling_governor`),
      ]);
      const khz = max === undefined ? NaN : Number(max.trim());
      return {
        cpu,
        ...(coreTypes[cpu] ? { coreType: coreTypes[cpu] } : {}),
        ...(Number.isFinite(khz) && khz > 0 ? { maxMHz: Math.round(khz / 1000) } : {}),
        ...(gov?.trim() ? { governor: gov.trim() } : {}),
      };
    }),
  );
  const entries = (
    await Promise.all(
      cpus.map(async (cpu) => {
        const dir = `${base}/cpu${cpu}/cache`;
        const idx = (await list(root, dir)).filter((n) => /^index\d+$/.test(n));
        return Promise.all(
          idx.map(async (i) => {
            const [level, type, size, shared] = await Promise.all(
              ['level', 'type', 'size', 'shared_cpu_list'].map((f) => readText(root, `${dir}/${i}/${f}`)),
            );
            return level && type && size ? { level, type, size, sharedCpuList: shared ?? '' } : undefined;
          }),
        );
      }),
    )
  )
    .flat()
    .filter((e): e is CacheEntry => e !== undefined);
  return { clusters: groupClusters(facts), caches: cachesFromSysfs(entries) };
}
