import type { IsaFeature } from '../types.js';
import { armCoreName, armImplementerName } from './arm-cores.js';
import { normaliseIsa } from './isa.js';

/** What /proc/cpuinfo says, normalised. Fields it does not give are absent; `notes` says what was odd. */
export interface CpuInfo {
  family?: 'x86' | 'arm';
  /** The kernel's architecture in Node's names; userland may differ (a 32-bit OS on a 64-bit kernel). */
  arch?: 'x64' | 'ia32' | 'arm64' | 'arm';
  /** Logical CPUs listed. */
  processors: number;
  physicalCores?: number;
  vendor?: string;
  model?: string;
  coreTypes: string[];
  /** Core type of each CPU, indexed by its `processor` number (ARM only; holes for unknown parts). */
  coreTypeByCpu: Array<string | undefined>;
  /** Features every listed CPU has. */
  isa: IsaFeature[];
  /** The `Model` line Raspberry Pi kernels append (the device-tree model). */
  board?: string;
  serial?: string;
  notes: string[];
}

type Fields = Map<string, string>;

/** Splits the text into per-processor field maps and the trailing global block (Hardware, Model, …). */
function splitRecords(text: string): { cpus: Fields[]; globals: Fields } {
  const cpus: Fields[] = [];
  const globals: Fields = new Map();
  let current: Fields | undefined;
  for (const raw of text.replace(/\r\n?/g, '\n').split('\n')) {
    const colon = raw.indexOf(':');
    if (colon < 0) {
      if (raw.trim() === '') current = undefined;
      continue;
    }
    const key = raw.slice(0, colon).trim();
    const value = raw.slice(colon + 1).trim();
    // Lower-case `processor` with a number starts a CPU; old 32-bit ARM kernels also print a global
    // `Processor : ARMv7 …` line, which must not count as one.
    if (key === 'processor' && /^\d+$/.test(value)) {
      current = new Map([['processor', value]]);
      cpus.push(current);
    } else if (key) {
      (current ?? globals).set(key, value);
    }
  }
  return { cpus, globals };
}

const X86_VENDORS: Record<string, string> = { GenuineIntel: 'Intel', AuthenticAMD: 'AMD', HygonGenuine: 'Hygon', CentaurHauls: 'Centaur' };

function intersect(lists: string[][]): string[] {
  if (lists.length === 0) return [];
  return lists[0].filter((w) => lists.every((l) => l.includes(w)));
}

/** Parses /proc/cpuinfo text from x86 or ARM Linux. Never throws: odd input gives fewer fields and a note. */
export function parseCpuinfo(text: string): CpuInfo {
  const { cpus, globals } = splitRecords(text);
  const out: CpuInfo = { processors: cpus.length, coreTypes: [], coreTypeByCpu: [], isa: [], notes: [] };
  if (text.trim() === '') {
    out.notes.push('cpuinfo is empty');
    return out;
  }
  if (cpus.length === 0) {
    out.notes.push("cpuinfo lists no 'processor : N' entries; it is not a Linux /proc/cpuinfo");
    return out;
  }
  if (globals.get('Model')) out.board = globals.get('Model');
  if (globals.get('Serial')) out.serial = globals.get('Serial');

  const isX86 = cpus.some((c) => c.has('vendor_id') || c.has('flags'));
  const isArm = cpus.some((c) => c.has('CPU implementer') || c.has('Features'));
  if (isX86) {
    out.family = 'x86';
    const withFlags = cpus.filter((c) => c.has('flags')).map((c) => c.get('flags')!.split(/\s+/));
    const flags = intersect(withFlags);
    out.isa = normaliseIsa('x86', flags);
    if (withFlags.length) out.arch = flags.includes('lm') ? 'x64' : 'ia32';
    if (withFlags.length < cpus.length) out.notes.push(`${cpus.length - withFlags.length} of ${cpus.length} CPUs list no flags; ISA is from the rest`);
    const vendor = cpus[0].get('vendor_id');
    if (vendor) out.vendor = X86_VENDORS[vendor] ?? vendor;
    const model = cpus[0].get('model name');
    if (model) out.model = model.replace(/\s+/g, ' ');
    const cores = new Set(cpus.filter((c) => c.has('core id')).map((c) => `${c.get('physical id') ?? 0}/${c.get('core id')}`));
    if (cores.size) out.physicalCores = cores.size;
  } else if (isArm) {
    out.family = 'arm';
    const withFeatures = cpus.filter((c) => c.has('Features')).map((c) => c.get('Features')!.split(/\s+/));
    const features = intersect(withFeatures);
    out.isa = normaliseIsa('arm', features);
    // `asimd`/`fp` are arm64 hwcap names; a 32-bit kernel says `neon`/`vfp` instead.
    if (withFeatures.length) out.arch = features.includes('asimd') || features.includes('fp') ? 'arm64' : 'arm';
    if (withFeatures.length < cpus.length) out.notes.push(`${cpus.length - withFeatures.length} of ${cpus.length} CPUs list no Features; ISA is from the rest`);
    const perCpu = cpus.map((c) => armCoreName(c.get('CPU implementer'), c.get('CPU part')));
    cpus.forEach((c, i) => {
      const n = Number(c.get('processor'));
      if (Number.isInteger(n) && n >= 0 && n < 4096) out.coreTypeByCpu[n] = perCpu[i];
    });
    const names = perCpu.filter((n): n is string => !!n);
    out.coreTypes = [...new Set(names)];
    const vendors = [...new Set(cpus.map((c) => armImplementerName(c.get('CPU implementer'))).filter((n): n is string => !!n))];
    if (vendors.length) out.vendor = vendors.join(' + ');
    if (out.coreTypes.length === 1) out.model = out.coreTypes[0];
    else if (out.coreTypes.length > 1) out.model = out.coreTypes.map((t) => `${names.filter((n) => n === t).length}x ${t}`).join(' + ');
    else if (cpus[0].get('model name') ?? globals.get('Processor')) out.model = (cpus[0].get('model name') ?? globals.get('Processor'))!;
  } else {
    out.notes.push('cpuinfo has neither x86 flags nor ARM Features; ISA unknown');
  }
  return out;
}
