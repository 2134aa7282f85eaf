import type { IsaFeature } from '../types.js';
import { isIsaWord, normaliseIsa } from './isa.js';
import type { CacheInfo } from './types.js';

// `lscpu` output → facts. lscpu reads the same /proc and /sys files the probes read, so on a device it is
// only a fallback; its value is that people paste it, so recorded outputs from real boards test the parsing
// and matching. Versions differ: old ones print flat `Key: value` lines, new ones (util-linux 2.37+) indent
// one section per core type (`Model name:` starts a section) and print a `Caches (sum of all):` block.

export interface LscpuSection {
  modelName?: string;
  maxMHz?: number;
  minMHz?: number;
  /** Cores in this section (cores per socket/cluster × sockets/clusters), when lscpu says. */
  cores?: number;
  isa: IsaFeature[];
}

export interface LscpuInfo {
  /** `uname -m` style: aarch64, x86_64, armv7l. */
  architecture?: string;
  cpus?: number;
  vendor?: string;
  sections: LscpuSection[];
  /** Cache totals as lscpu prints them, turned into per-instance sizes where it gives the instance count. */
  caches: CacheInfo[];
  notes: string[];
}

/**
 * Splits lscpu text into `key: value` lines, joining the indented continuation lines new lscpu versions use
 * for long Flags values. lscpu wraps at a column, sometimes inside a word ("asimd" / "dp"), so a break is
 * healed only when the two halves make a flag the ISA table knows and they are not two flags already.
 */
function logicalLines(text: string): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  for (const raw of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (!raw.trim()) continue;
    const m = /^\s*([A-Za-z0-9()_ -]+?):(?:\s+(.*))?$/.exec(raw);
    if (m && !/\s{2,}/.test(m[1])) {
      out.push({ key: m[1].trim(), value: (m[2] ?? '').trim() });
      continue;
    }
    const prev = out[out.length - 1];
    if (!prev) continue;
    const next = raw.trim();
    const a = prev.value.split(/\s+/).pop() ?? '';
    const b = next.split(/\s+/)[0];
    const glue = isIsaWord(a + b) && !(isIsaWord(a) && isIsaWord(b)) ? '' : ' ';
    prev.value = `${prev.value}${glue}${next}`;
  }
  return out;
}

const num = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined;
  const n = Number(s.replace(/,/g, '.'));
  return Number.isFinite(n) && s.trim() !== '' && s.trim() !== '-' ? n : undefined;
};

/** "384 KiB (6 instances)", "1.5 MiB", "32K", "4 MiB (2 instances)" → KB total and instances. */
export function parseCacheSize(text: string): { totalKB: number; instances?: number } | undefined {
  const m = /^([\d.]+)\s*([KMG])(?:i?B)?\b(?:\s*\((\d+)\s+instances?\))?/i.exec(text.trim());
  if (!m) return undefined;
  const mult = { K: 1, M: 1024, G: 1024 * 1024 }[m[2].toUpperCase() as 'K' | 'M' | 'G'];
  const totalKB = Math.round(Number(m[1]) * mult);
  if (!Number.isFinite(totalKB) || totalKB <= 0) return undefined;
  return { totalKB, ...(m[3] ? { instances: Number(m[3]) } : {}) };
}

const CACHE_KEYS: Record<string, { level: number; type: CacheInfo['type'] }> = {
  l1d: { level: 1, type: 'data' },
  l1i: { level: 1, type: 'instruction' },
  l2: { level: 2, type: 'unified' },
  l3: { level: 3, type: 'unified' },
};

/** Parses `lscpu` text (any util-linux version). Never throws: odd input gives fewer fields and a note. */
export function parseLscpu(text: string): LscpuInfo {
  const out: LscpuInfo = { sections: [], caches: [], notes: [] };
  const lines = logicalLines(text);
  if (!text.trim()) {
    out.notes.push('lscpu output is empty');
    return out;
  }
  let family: 'x86' | 'arm' | undefined;
  let current: (LscpuSection & { perUnit?: number; units?: number }) | undefined;
  const sections: Array<LscpuSection & { perUnit?: number; units?: number }> = [];
  const section = () => {
    if (!current) {
      current = { isa: [] };
      sections.push(current);
    }
    return current;
  };
  for (const { key, value } of lines) {
    const k = key.toLowerCase();
    if (k === 'architecture') {
      out.architecture = value;
      family = /86/.test(value) ? 'x86' : /arm|aarch/i.test(value) ? 'arm' : undefined;
    } else if (k === 'cpu(s)') out.cpus = num(value);
    else if (k === 'vendor id') out.vendor = value;
    else if (k === 'model name') {
      // Old flat output prints per-socket counts before the model name: they belong to the same section.
      if (current && current.modelName === undefined) current.modelName = value;
      else {
        current = { isa: [], modelName: value };
        sections.push(current);
      }
    } else if (k === 'cpu max mhz') section().maxMHz = num(value);
    else if (k === 'cpu min mhz') section().minMHz = num(value);
    else if (k === 'core(s) per socket' || k === 'core(s) per cluster') section().perUnit = num(value);
    else if (k === 'socket(s)' || k === 'cluster(s)') {
      const n = num(value);
      if (n !== undefined) section().units = n;
    } else if (k === 'flags') {
      const words = value.split(/\s+/).filter(Boolean);
      // The flags say their own family (lscpu --sysroot prints the host's Architecture, not the dump's).
      const fam = words.includes('asimd') || words.includes('neon') ? 'arm' : words.includes('fpu') || words.includes('sse2') ? 'x86' : family;
      section().isa = fam ? normaliseIsa(fam, words) : [];
    } else {
      const ck = /^(l1d|l1i|l2|l3)(?: cache)?$/.exec(k)?.[1];
      if (ck) {
        const size = parseCacheSize(value);
        if (!size) out.notes.push(`lscpu: cannot read cache size "${value}" for ${key}`);
        else {
          const per = size.instances ? Math.round(size.totalKB / size.instances) : size.totalKB;
          out.caches.push({ ...CACHE_KEYS[ck], sizeKB: per, ...(size.instances ? { instances: size.instances } : {}) });
          // Old lscpu prints the per-CPU size with no instance count; that is said, not guessed.
          if (!size.instances) out.notes.push(`lscpu: ${key} ${value} printed without an instance count; read as the size of one instance`);
        }
      }
    }
  }
  out.sections = sections.map(({ perUnit, units, ...s }) => ({
    ...s,
    ...(perUnit !== undefined ? { cores: perUnit * (units ?? 1) } : {}),
  }));
  if (!out.architecture && !out.sections.length && !out.caches.length) out.notes.push('lscpu output has no Architecture or Model name line; not lscpu output?');
  return out;
}
