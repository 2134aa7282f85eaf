import { access, readdir, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readText } from './probes.js';
import { parseMilliCelsius } from './sysfs.js';
import type { Accelerator, ThermalZone } from './types.js';

// Board-level probes: SoC, thermal zones, accelerators and TensorRT, free disk. Each fails soft.

async function list(root: string, rel: string): Promise<string[]> {
  try {
    return await readdir(join(root, rel));
  } catch {
    return [];
  }
}

async function exists(root: string, rel: string): Promise<boolean> {
  try {
    await access(join(root, rel));
    return true;
  } catch {
    return false;
  }
}

const SOC_NAMES: Record<string, (chip: string) => string> = {
  brcm: (c) => c.toUpperCase(),
  nvidia: (c) => c.replace(/^tegra/, 'Tegra'),
  rockchip: (c) => c.toUpperCase(),
  amlogic: (c) => c.toUpperCase(),
  allwinner: (c) => c.toUpperCase(),
  qcom: (c) => c.toUpperCase(),
  mediatek: (c) => c.toUpperCase(),
};

/**
 * The device tree's root `compatible` (NUL-separated, most specific first) → the SoC, which by convention is
 * the last entry: "raspberrypi,5-model-b\0brcm,bcm2712\0" → 'BCM2712'; "…\0nvidia,tegra234\0" → 'Tegra234'.
 */
export function parseCompatibleSoc(text: string): string | undefined {
  const entries = text.split('\0').map((s) => s.trim()).filter(Boolean);
  const last = entries[entries.length - 1];
  const m = last ? /^([a-z0-9-]+),([a-z0-9_.+-]+)$/i.exec(last) : null;
  if (!m) return undefined;
  const name = SOC_NAMES[m[1].toLowerCase()];
  return name ? name(m[2]) : `${m[1]} ${m[2]}`;
}

export async function probeSoc(root: string): Promise<string | undefined> {
  for (const rel of ['proc/device-tree/compatible', 'sys/firmware/devicetree/base/compatible']) {
    const text = await readText(root, rel);
    const soc = text === undefined ? undefined : parseCompatibleSoc(text);
    if (soc) return soc;
  }
  return undefined;
}

/** Every thermal zone with its type and temperature (either may be unreadable). */
export async function probeThermalZones(root: string): Promise<ThermalZone[]> {
  const base = 'sys/class/thermal';
  const zones = (await list(root, base)).filter((n) => /^thermal_zone\d+$/.test(n)).sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  return Promise.all(
    zones.map(async (zone) => {
      const [type, temp] = await Promise.all([readText(root, `${base}/${zone}/type`), readText(root, `${base}/${zone}/temp`)]);
      const tempC = temp === undefined ? undefined : parseMilliCelsius(temp);
      return { zone, ...(type?.trim() ? { type: type.trim() } : {}), ...(tempC !== undefined ? { tempC } : {}) };
    }),
  );
}

/** The zone that names the CPU or SoC (Pi: cpu-thermal; x86: x86_pkg_temp; Jetson: CPU-therm, cpu-thermal, tj-thermal), else the first readable. */
export function cpuTemperature(zones: ThermalZone[]): number | undefined {
  const valid = zones.filter((z) => z.tempC !== undefined);
  return (valid.find((z) => /cpu|x86_pkg|soc|tj-therm/i.test(z.type ?? '')) ?? valid[0])?.tempC;
}

const DEVICE_NODES: Array<{ rel: string; name: string; kind: Accelerator['kind'] }> = [
  { rel: 'dev/nvhost-ctrl-gpu', name: 'nvidia-jetson-gpu', kind: 'gpu' }, // L4T R32-R35
  { rel: 'dev/nvgpu/igpu0/ctrl', name: 'nvidia-jetson-gpu', kind: 'gpu' }, // L4T R36 (JetPack 6)
  { rel: 'dev/nvidia0', name: 'nvidia-gpu', kind: 'gpu' },
  { rel: 'dev/hailo0', name: 'hailo', kind: 'npu' },
  { rel: 'dev/apex_0', name: 'coral-edgetpu', kind: 'npu' },
];

const LIB_DIRS = ['usr/lib/aarch64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'usr/local/cuda/lib64'];

/** "libnvinfer.so.10.3.0" → "10.3.0"; the longest version among the files wins. */
export function tensorrtVersion(fileNames: string[]): string | undefined {
  const versions = fileNames.map((f) => /^libnvinfer\.so\.(\d+(?:\.\d+)*)$/.exec(f)?.[1]).filter((v): v is string => !!v);
  return versions.sort((a, b) => b.split('.').length - a.split('.').length)[0];
}

const CPU_ONLY = 'not used: onnxruntime-node runs on the CPU here (informational)';

/** Accelerators as device nodes, plus TensorRT when its runtime library (libnvinfer) or trtexec is installed. */
export async function probeAcceleratorDetails(root: string): Promise<Accelerator[]> {
  const found: Accelerator[] = [];
  for (const n of DEVICE_NODES) {
    if (found.some((f) => f.name === n.name)) continue;
    if (await exists(root, n.rel)) found.push({ name: n.name, kind: n.kind, evidence: `/${n.rel}`, usable: CPU_ONLY });
  }
  for (const dir of LIB_DIRS) {
    const files = (await list(root, dir)).filter((f) => f.startsWith('libnvinfer.so'));
    if (!files.length) continue;
    const version = tensorrtVersion(files);
    found.push({ name: 'tensorrt', kind: 'library', evidence: `/${dir}/${files.sort()[0]}`, ...(version ? { version } : {}), usable: CPU_ONLY });
    break;
  }
  if (!found.some((f) => f.name === 'tensorrt') && (await exists(root, 'usr/src/tensorrt/bin/trtexec'))) {
    found.push({ name: 'tensorrt', kind: 'library', evidence: '/usr/src/tensorrt/bin/trtexec', usable: CPU_ONLY });
  }
  return found;
}

/** Free and total space of the filesystem holding `path` (the agent's state folder: candidates live there). */
export async function probeDisk(path: string): Promise<{ disk?: { path: string; freeMB: number; totalMB: number }; note?: string }> {
  const abs = resolve(path);
  // The state folder may not exist yet (first run): measure the nearest folder that does.
  for (let p = abs; ; p = resolve(p, '..')) {
    try {
      const s = await statfs(p);
      const mb = (blocks: number) => Math.floor((blocks * s.bsize) / 2 ** 20);
      return { disk: { path: abs, freeMB: mb(s.bavail), totalMB: mb(s.blocks) } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || p === resolve(p, '..')) {
        return { note: `disk: cannot stat ${abs} (${(e as Error).message})` };
      }
    }
  }
}
