import { readFile } from 'node:fs/promises';
import { availableParallelism, hostname, release } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { IsaFeature } from '../types.js';
import { isaFromHwcaps, parseAuxv } from './auxv.js';
import { liveCommands, recordedCommands, type CommandSource } from './commands.js';
import { parseCpuinfo, type CpuInfo } from './cpuinfo.js';
import { cpuTemperature, probeAcceleratorDetails, probeDisk, probeSoc, probeThermalZones } from './device.js';
import { deviceId } from './id.js';
import { normaliseIsa } from './isa.js';
import { parseLscpu, type LscpuInfo } from './lscpu.js';
import { probeBoard, probeThrottleFlags, readText } from './probes.js';
import { onnxruntimeVersion, probeProviders } from './runtime.js';
import { systemFacts, type SiFacts } from './si.js';
import { parseMeminfo, parseOsRelease } from './sysfs.js';
import { parseNvTegraRelease } from './tegra.js';
import { isThrottledNow } from './throttle.js';
import { probeTopology } from './topology.js';
import type { Profile, ProviderInfo } from './types.js';
import { probeVendorTools } from './vendor.js';

export type { Profile } from './types.js';

export interface ProfileOptions {
  /** Filesystem root to read /proc, /sys and /etc under (a fixture tree in tests). Default '/'. */
  root?: string;
  /** Skip systeminformation even on the live machine (it is only ever used when root is '/'). */
  skipSystemInformation?: boolean;
  /** The agent's state folder: the free space of its filesystem is reported. Default: none on a recorded root, '.edgetune-state' live. */
  stateDir?: string;
  /**
   * Vendor tools (lscpu, vcgencmd, nvpmodel, tegrastats): run live, read from `<root>/cmd/*.txt` on a
   * recorded root (the defaults), another source, or 'none'.
   */
  commands?: CommandSource | 'none';
  /** Ask onnxruntime-node for its execution providers in a child process (default: live only). */
  probeRuntime?: boolean;
}

const intersect = (lists: IsaFeature[][]): IsaFeature[] => (lists.length ? lists[0].filter((f) => lists.every((l) => l.includes(f))) : []);

/**
 * Profiles the device: files first (they work on a fixture root too), the board vendor's tools on the boards
 * that have them, systeminformation for the gaps on the live machine. Never throws for a missing probe: the
 * value stays undefined and `notes` says why. Budget: under 2 s (the slowest part is the ORT child process).
 */
export async function profileDevice(opts: ProfileOptions = {}): Promise<Profile> {
  const t0 = performance.now();
  const root = resolve(opts.root ?? '/');
  const live = root === resolve('/');
  const notes: string[] = [];
  const commands = opts.commands === 'none' ? undefined : opts.commands ?? (live ? liveCommands() : recordedCommands(root));
  const stateDir = opts.stateDir ?? (live ? '.edgetune-state' : undefined);

  const [cpuText, machineId, hostText, memText, osText, kernelText, board, soc, zones, sysThrottle, accelerators, tegraRelease, ort, providers, disk] =
    await Promise.all([
      readText(root, 'proc/cpuinfo'),
      readText(root, 'etc/machine-id'),
      readText(root, 'etc/hostname'),
      readText(root, 'proc/meminfo'),
      readText(root, 'etc/os-release').then((t) => t ?? readText(root, 'usr/lib/os-release')),
      readText(root, 'proc/sys/kernel/osrelease'),
      probeBoard(root),
      probeSoc(root),
      probeThermalZones(root),
      probeThrottleFlags(root),
      probeAcceleratorDetails(root),
      readText(root, 'etc/nv_tegra_release'),
      onnxruntimeVersion(),
      opts.probeRuntime ?? live ? probeProviders() : Promise.resolve(undefined),
      stateDir ? probeDisk(stateDir) : Promise.resolve(undefined),
    ]);

  const ci: CpuInfo | undefined = cpuText === undefined ? undefined : parseCpuinfo(cpuText);
  if (!ci) notes.push('cpu: /proc/cpuinfo unreadable');
  else notes.push(...ci.notes.map((n) => `cpu: ${n}`));
  const mem = memText === undefined ? {} : parseMeminfo(memText);
  const kernel = live ? release() : kernelText?.trim() || undefined;
  const distro = osText === undefined ? undefined : parseOsRelease(osText);
  const l4t = tegraRelease === undefined ? undefined : parseNvTegraRelease(tegraRelease);
  if (tegraRelease !== undefined && !l4t) notes.push('board: /etc/nv_tegra_release exists but has no "# Rnn (release), REVISION: x.y" line');

  const boardName = board.board ?? ci?.board;
  if (!boardName) notes.push('board: unknown (no device-tree model or DMI product name)');
  const isPi = /raspberry pi/i.test(boardName ?? '') || /^BCM27|^BCM28/.test(soc ?? '');
  const isJetson = l4t !== undefined || /jetson/i.test(boardName ?? '') || /^Tegra/.test(soc ?? '');

  const topology = await probeTopology(root, ci?.coreTypeByCpu ?? [], ci?.processors);
  const zoneTemp = cpuTemperature(zones);

  // lscpu repeats what the files say, so it is asked only for what they lacked.
  const needLscpu = !ci?.family || !ci.isa.length || !topology.caches.length || !topology.clusters.some((c) => c.maxMHz !== undefined);
  const [lscpuText, vendor] = await Promise.all([
    needLscpu && commands ? commands.run('lscpu') : Promise.resolve(undefined),
    probeVendorTools({ root, commands, isPi, isJetson, sysfsThrottle: sysThrottle, needTemp: zoneTemp === undefined }),
  ]);
  if (lscpuText?.note) notes.push(lscpuText.note);
  const ls: LscpuInfo | undefined = lscpuText?.text === undefined ? undefined : parseLscpu(lscpuText.text);
  if (ls) notes.push(...ls.notes);
  notes.push(...vendor.notes);

  const needs = {
    cpu: !ci?.family && !ls?.sections.length,
    mem: mem.totalMB === undefined || mem.availableMB === undefined,
    os: distro === undefined,
    temp: zoneTemp === undefined && vendor.tempC === undefined,
  };
  let si: SiFacts = { notes: [] };
  if (live && !opts.skipSystemInformation) si = await systemFacts(needs);
  notes.push(...si.notes);

  // arch is what Node runs as on the live machine: it picks the onnxruntime binary. A fixture has no
  // process of its own, so there the kernel's arch (from cpuinfo, else lscpu) stands in.
  const lsArch = ls?.architecture === 'aarch64' ? 'arm64' : ls?.architecture === 'x86_64' ? 'x64' : /^armv/.test(ls?.architecture ?? '') ? 'arm' : undefined;
  let arch: string;
  if (live) {
    arch = process.arch;
    if (ci?.arch && ci.arch !== arch) notes.push(`arch: kernel is ${ci.arch} but Node runs as ${arch} (e.g. a 32-bit OS on a 64-bit CPU)`);
  } else if (ci?.arch ?? lsArch) {
    arch = (ci?.arch ?? lsArch)!;
  } else {
    arch = 'unknown';
    notes.push('arch: unknown (no readable cpuinfo under the profile root)');
  }

  let isa = ci?.isa ?? [];
  const lsIsa = intersect((ls?.sections ?? []).filter((s) => s.isa.length).map((s) => s.isa));
  if (!isa.length && lsIsa.length) {
    isa = lsIsa;
    notes.push('cpu: ISA features from lscpu (cpuinfo gave none)');
  }
  // An arm64 process whose cpuinfo is not ARM's (qemu-user passes the host's through) or lists nothing: the
  // kernel's HWCAP words in this process's auxv say what the CPU it runs on can do.
  if (live && arch === 'arm64' && (ci?.family !== 'arm' || !isa.length)) {
    const aux = await readFile('/proc/self/auxv').then((b) => parseAuxv(b), () => undefined);
    if (aux?.hwcap !== undefined) {
      isa = isaFromHwcaps(aux.hwcap, aux.hwcap2).isa;
      notes.push('cpu: ISA features from the HWCAP bits in /proc/self/auxv (cpuinfo does not describe this arm64 CPU)');
    }
  }
  if (!isa.length && si.cpu?.flags) isa = normaliseIsa(arch.startsWith('arm') ? 'arm' : 'x86', si.cpu.flags);
  if (isa.length === 0) notes.push('cpu: ISA features unknown; targets that need them will not match');

  let cores = ci?.processors || ls?.cpus || undefined;
  if (live) {
    const usable = availableParallelism();
    if (cores !== undefined && usable !== cores) notes.push(`cpu: ${cores} CPUs listed, ${usable} usable by this process (affinity)`);
    cores = usable;
  } else if (cores === undefined) notes.push('cpu: core count unknown');

  let clustersMHz = [...new Set(topology.clusters.map((c) => c.maxMHz).filter((m): m is number => m !== undefined))];
  if (!clustersMHz.length) {
    const fromLs = [...new Set((ls?.sections ?? []).map((s) => s.maxMHz).filter((m): m is number => m !== undefined).map(Math.round))];
    clustersMHz = fromLs.length ? fromLs : si.cpu?.maxMHz ? [si.cpu.maxMHz] : [];
    if (fromLs.length) notes.push('cpu: max frequency from lscpu (no cpufreq files)');
  }
  if (!clustersMHz.length) notes.push('cpu: max frequency unknown (no cpufreq; common in VMs and containers)');
  const caches = topology.caches.length ? topology.caches : ls?.caches ?? [];
  if (!topology.caches.length && caches.length) notes.push('cpu: cache sizes from lscpu (no sysfs cache entries)');
  if (!caches.length) notes.push('cpu: cache sizes unknown (no sysfs cache entries, which older Raspberry Pi kernels omit, and no lscpu caches)');
  const governors = [...new Set(topology.clusters.map((c) => c.governor).filter((g): g is string => !!g))];
  if (!governors.length) notes.push('cpu: frequency governor unknown (no cpufreq)');
  else if (governors.some((g) => g !== 'performance')) notes.push(`cpu: governor ${governors.join('/')} scales the clock with load; benchmarks warm up to let it settle`);

  const memory = {
    totalMB: mem.totalMB ?? si.mem?.totalMB,
    availableMB: mem.availableMB ?? si.mem?.availableMB,
  };
  if (memory.totalMB === undefined) notes.push('memory: total unknown (/proc/meminfo unreadable)');
  if (memory.availableMB === undefined) notes.push('memory: available unknown');
  if (mem.swapTotalMB === undefined) notes.push('memory: swap unknown');

  const temp = zoneTemp ?? vendor.tempC ?? si.tempC;
  if (temp === undefined) notes.push('thermal: temperature unknown (no thermal zone)');
  const throttleFlags = vendor.throttleFlags;
  if (!throttleFlags) notes.push(`thermal: throttling state unknown (${isJetson ? 'Jetson reports clocks and power mode, not a throttle flag' : 'only Raspberry Pi firmware reports it'})`);

  if (disk?.note) notes.push(disk.note);
  const os = distro ? (kernel ? `${distro} (kernel ${kernel})` : distro) : si.os;
  if (!os) notes.push('os: unknown (no os-release)');
  if (ort.note) notes.push(ort.note);
  const runtime = runtimeFacts(live, ort.version, providers, notes);

  const idSource = deviceId({ machineId, serial: ci?.serial, hostname: live ? hostname() : hostText?.trim() });
  if (idSource.note) notes.push(idSource.note);

  return {
    v: 1,
    id: idSource.id,
    ...(boardName ? { board: boardName } : {}),
    ...(soc ? { soc } : {}),
    ...(l4t ? { l4t: l4t.l4t } : {}),
    arch,
    cpu: {
      ...(ci?.model ?? ls?.sections[0]?.modelName ?? si.cpu?.model ? { model: ci?.model ?? ls?.sections[0]?.modelName ?? si.cpu?.model } : {}),
      ...(ci?.vendor ?? si.cpu?.vendor ? { vendor: ci?.vendor ?? si.cpu?.vendor } : {}),
      ...(cores !== undefined ? { cores } : {}),
      ...(ci?.physicalCores !== undefined ? { physicalCores: ci.physicalCores } : {}),
      ...(ci?.coreTypes.length ? { coreTypes: ci.coreTypes } : {}),
      clustersMHz,
      isa,
      clusters: topology.clusters,
      caches,
      ...(governors.length === 1 ? { governor: governors[0] } : {}),
    },
    memory: {
      ...(memory.totalMB !== undefined ? { totalMB: memory.totalMB } : {}),
      ...(memory.availableMB !== undefined ? { availableMB: memory.availableMB } : {}),
      ...(mem.swapTotalMB !== undefined ? { swapTotalMB: mem.swapTotalMB } : {}),
      ...(mem.swapFreeMB !== undefined ? { swapFreeMB: mem.swapFreeMB } : {}),
    },
    ...(disk?.disk ? { disk: disk.disk } : {}),
    accelerators: [...new Set(accelerators.map((a) => a.name))],
    acceleratorDetails: accelerators,
    thermal: {
      ...(temp !== undefined ? { tempC: temp } : {}),
      ...(throttleFlags ? { throttled: isThrottledNow(throttleFlags), throttleFlags } : {}),
      zones,
      ...(vendor.powerMode ? { powerMode: vendor.powerMode } : {}),
    },
    ...(os ? { os } : {}),
    runtime,
    notes,
    costMs: Math.round(performance.now() - t0),
  };
}

/**
 * Providers edgetune can measure on: those bundled in onnxruntime-node's binary, less WebGPU (it needs a GPU
 * adapter at session creation and the measure runner does not drive it). The full list stays in
 * `providerDetails`. Without a probe, the CPU provider is assumed: every Linux build has it.
 */
function runtimeFacts(
  live: boolean,
  version: string | undefined,
  probed: { providers?: ProviderInfo[]; note?: string } | undefined,
  notes: string[],
): Profile['runtime'] {
  const base = { node: process.versions.node, ...(version ? { onnxruntime: version } : {}) };
  if (!probed?.providers) {
    if (probed?.note) notes.push(probed.note);
    else if (!live) notes.push('runtime: execution providers not probed for a recorded root; the CPU provider is assumed');
    return { ...base, providers: ['cpu'] };
  }
  const usable = probed.providers.filter((p) => p.bundled && p.name !== 'webgpu').map((p) => p.name);
  const rest = probed.providers.filter((p) => !usable.includes(p.name)).map((p) => `${p.name}${p.bundled ? '' : ' (needs libraries onnxruntime-node does not ship)'}`);
  if (rest.length) notes.push(`runtime: onnxruntime-node also lists ${rest.join(', ')}; edgetune measures on the CPU provider`);
  return { ...base, providers: usable.length ? usable : ['cpu'], providerDetails: probed.providers };
}
