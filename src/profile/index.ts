import { availableParallelism, hostname, release } from 'node:os';
import { resolve } from 'node:path';
import type { DeviceProfile } from '../types.js';
import { parseCpuinfo, type CpuInfo } from './cpuinfo.js';
import { deviceId } from './id.js';
import { normaliseIsa } from './isa.js';
import { probeAccelerators, probeBoard, probeClusters, probeTemperature, probeThrottled, readText } from './probes.js';
import { onnxruntimeVersion } from './runtime.js';
import { systemFacts, type SiFacts } from './si.js';
import { parseMeminfo, parseOsRelease } from './sysfs.js';

export interface ProfileOptions {
  /** Filesystem root to read /proc, /sys and /etc under (a fixture tree in tests). Default '/'. */
  root?: string;
  /** Skip systeminformation even on the live machine (it is only ever used when root is '/'). */
  skipSystemInformation?: boolean;
}

/**
 * Profiles the device: files first (they work on a fixture root too), systeminformation for the gaps on the
 * live machine. Never throws for a missing probe: the value stays undefined and `notes` says why.
 */
export async function profileDevice(opts: ProfileOptions = {}): Promise<DeviceProfile> {
  const root = resolve(opts.root ?? '/');
  const live = root === resolve('/');
  const notes: string[] = [];

  const [cpuText, machineId, hostText, memText, osText, kernelText, board, clustersMHz, tempC, throttled, accelerators, ort] =
    await Promise.all([
      readText(root, 'proc/cpuinfo'),
      readText(root, 'etc/machine-id'),
      readText(root, 'etc/hostname'),
      readText(root, 'proc/meminfo'),
      readText(root, 'etc/os-release').then((t) => t ?? readText(root, 'usr/lib/os-release')),
      readText(root, 'proc/sys/kernel/osrelease'),
      probeBoard(root),
      probeClusters(root),
      probeTemperature(root),
      probeThrottled(root),
      probeAccelerators(root),
      onnxruntimeVersion(),
    ]);

  const ci: CpuInfo | undefined = cpuText === undefined ? undefined : parseCpuinfo(cpuText);
  if (!ci) notes.push('cpu: /proc/cpuinfo unreadable');
  else notes.push(...ci.notes.map((n) => `cpu: ${n}`));
  const mem = memText === undefined ? {} : parseMeminfo(memText);
  const kernel = live ? release() : kernelText?.trim() || undefined;
  const distro = osText === undefined ? undefined : parseOsRelease(osText);

  const needs = {
    cpu: !ci?.family,
    mem: mem.totalMB === undefined || mem.availableMB === undefined,
    os: distro === undefined,
    temp: tempC === undefined,
  };
  let si: SiFacts = { notes: [] };
  if (live && !opts.skipSystemInformation) si = await systemFacts(needs);
  notes.push(...si.notes);

  // arch is what Node runs as on the live machine: it picks the onnxruntime binary. A fixture has no
  // process of its own, so there the kernel's arch (from cpuinfo) stands in.
  let arch: string;
  if (live) {
    arch = process.arch;
    if (ci?.arch && ci.arch !== arch) notes.push(`arch: kernel is ${ci.arch} but Node runs as ${arch} (e.g. a 32-bit OS on a 64-bit CPU)`);
  } else if (ci?.arch) {
    arch = ci.arch;
  } else {
    arch = 'unknown';
    notes.push('arch: unknown (no readable cpuinfo under the profile root)');
  }

  let isa = ci?.isa ?? [];
  if (!ci?.family && si.cpu?.flags) isa = normaliseIsa(arch.startsWith('arm') ? 'arm' : 'x86', si.cpu.flags);
  if (isa.length === 0) notes.push('cpu: ISA features unknown; targets that need them will not match');

  let cores = ci?.processors || undefined;
  if (live) {
    const usable = availableParallelism();
    if (cores !== undefined && usable !== cores) notes.push(`cpu: ${cores} CPUs listed, ${usable} usable by this process (affinity)`);
    cores = usable;
  } else if (cores === undefined) notes.push('cpu: core count unknown');

  const clusters = clustersMHz.length ? clustersMHz : si.cpu?.maxMHz ? [si.cpu.maxMHz] : [];
  if (!clusters.length) notes.push('cpu: max frequency unknown (no cpufreq; common in VMs and containers)');

  const memory = {
    totalMB: mem.totalMB ?? si.mem?.totalMB,
    availableMB: mem.availableMB ?? si.mem?.availableMB,
  };
  if (memory.totalMB === undefined) notes.push('memory: total unknown (/proc/meminfo unreadable)');
  if (memory.availableMB === undefined) notes.push('memory: available unknown');

  const boardName = board.board ?? ci?.board;
  if (!boardName) notes.push('board: unknown (no device-tree model or DMI product name)');

  const temp = tempC ?? si.tempC;
  if (temp === undefined) notes.push('thermal: temperature unknown (no thermal zone)');
  if (throttled === undefined) notes.push('thermal: throttling state unknown (only Raspberry Pi firmware reports it)');

  const os = distro ? (kernel ? `${distro} (kernel ${kernel})` : distro) : si.os;
  if (!os) notes.push('os: unknown (no os-release)');
  if (ort.note) notes.push(ort.note);

  const idSource = deviceId({
    machineId,
    serial: ci?.serial,
    hostname: live ? hostname() : hostText?.trim(),
  });
  if (idSource.note) notes.push(idSource.note);

  return {
    v: 1,
    id: idSource.id,
    ...(boardName ? { board: boardName } : {}),
    arch,
    cpu: {
      ...(ci?.model ?? si.cpu?.model ? { model: ci?.model ?? si.cpu?.model } : {}),
      ...(ci?.vendor ?? si.cpu?.vendor ? { vendor: ci?.vendor ?? si.cpu?.vendor } : {}),
      ...(cores !== undefined ? { cores } : {}),
      ...(ci?.physicalCores !== undefined ? { physicalCores: ci.physicalCores } : {}),
      ...(ci?.coreTypes.length ? { coreTypes: ci.coreTypes } : {}),
      clustersMHz: clusters,
      isa,
    },
    memory: {
      ...(memory.totalMB !== undefined ? { totalMB: memory.totalMB } : {}),
      ...(memory.availableMB !== undefined ? { availableMB: memory.availableMB } : {}),
    },
    accelerators,
    thermal: {
      ...(temp !== undefined ? { tempC: temp } : {}),
      ...(throttled !== undefined ? { throttled } : {}),
    },
    ...(os ? { os } : {}),
    runtime: {
      node: process.versions.node,
      ...(ort.version ? { onnxruntime: ort.version } : {}),
      // onnxruntime-node's published Linux x64/arm64 binaries carry the CPU execution provider only.
      providers: ['cpu'],
    },
    notes,
  };
}
