import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clustersFromMaxFreqs, parseDeviceTreeModel, parseMilliCelsius } from './sysfs.js';
import { isThrottledNow, parseThrottleFlags } from './throttle.js';
import type { ThrottleFlags } from './types.js';

// File probes under a root folder (a fake tree in tests, '/' on a device). Each one fails soft: a file that
// is missing or unreadable gives undefined and the caller writes the note.

/** The file's text, or undefined when it is missing or unreadable (procfs/sysfs permissions vary). */
export async function readText(root: string, rel: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, rel), 'utf8');
  } catch {
    return undefined;
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

async function list(root: string, rel: string): Promise<string[]> {
  try {
    return await readdir(join(root, rel));
  } catch {
    return [];
  }
}

/** Board name: the device tree's model (ARM boards), else DMI vendor + product (x86 PCs). */
export async function probeBoard(root: string): Promise<{ board?: string; source?: string }> {
  for (const rel of ['proc/device-tree/model', 'sys/firmware/devicetree/base/model']) {
    const text = await readText(root, rel);
    const model = text === undefined ? undefined : parseDeviceTreeModel(text);
    if (model) return { board: model, source: `/${rel}` };
  }
  // Firmware placeholders say nothing about the board, so they count as absent.
  const junk = /^(to be filled.*|default string|system product name|system manufacturer|not specified|none|)$/i;
  const parts: string[] = [];
  for (const rel of ['sys/class/dmi/id/sys_vendor', 'sys/class/dmi/id/product_name']) {
    const v = (await readText(root, rel))?.trim();
    if (v && !junk.test(v) && !parts.includes(v)) parts.push(v);
  }
  return parts.length ? { board: parts.join(' '), source: '/sys/class/dmi/id' } : {};
}

/** Max frequency per cluster from cpufreq, or [] when cpufreq is absent (VMs, containers). */
export async function probeClusters(root: string): Promise<number[]> {
  const base = 'sys/devices/system/cpu';
  const cpus = (await list(root, base))
    .filter((n) => /^cpu\d+$/.test(n))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  const texts = await Promise.all(cpus.map((c) => readText(root, `${base}/${c}/cpufreq/cpuinfo_max_freq`)));
  return clustersFromMaxFreqs(texts.filter((t): t is string => t !== undefined));
}

/** CPU temperature from the thermal zone that names the CPU or SoC (first readable zone otherwise). */
export async function probeTemperature(root: string): Promise<number | undefined> {
  const base = 'sys/class/thermal';
  const zones = (await list(root, base)).filter((n) => /^thermal_zone\d+$/.test(n)).sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  const read = await Promise.all(
    zones.map(async (z) => ({
      type: ((await readText(root, `${base}/${z}/type`)) ?? '').trim(),
      temp: parseMilliCelsius((await readText(root, `${base}/${z}/temp`)) ?? ''),
    })),
  );
  const valid = read.filter((z) => z.temp !== undefined);
  return (valid.find((z) => /cpu|x86_pkg|soc|tj-therm/i.test(z.type)) ?? valid[0])?.temp;
}

/** Raspberry Pi firmware throttling flags from sysfs; undefined on boards without that firmware interface. */
export async function probeThrottleFlags(root: string): Promise<ThrottleFlags | undefined> {
  // Pi 4 and earlier expose it under soc/; the Pi 5 under soc@107c000000/ (an address-named node).
  const candidates = ['sys/devices/platform/soc/soc:firmware/get_throttled'];
  for (const dir of (await list(root, 'sys/devices/platform')).filter((d) => d.startsWith('soc@'))) {
    for (const sub of (await list(root, `sys/devices/platform/${dir}`)).filter((s) => s.includes('firmware'))) {
      candidates.push(`sys/devices/platform/${dir}/${sub}/get_throttled`);
    }
  }
  for (const rel of candidates) {
    const text = await readText(root, rel);
    if (text !== undefined) return parseThrottleFlags(text, `/${rel}`);
  }
  return undefined;
}

/** Raspberry Pi firmware throttling state ("now" bits); undefined on boards without that firmware interface. */
export async function probeThrottled(root: string): Promise<boolean | undefined> {
  const f = await probeThrottleFlags(root);
  return f === undefined ? undefined : isThrottledNow(f);
}

const ACCELERATOR_NODES: Array<[string, string]> = [
  ['dev/nvhost-ctrl-gpu', 'nvidia-jetson-gpu'],
  ['dev/nvidia0', 'nvidia-gpu'],
  ['dev/hailo0', 'hailo'],
  ['dev/apex_0', 'coral-edgetpu'],
];

/** Accelerators visible as device nodes (informational: onnxruntime-node's Linux build runs on the CPU). */
export async function probeAccelerators(root: string): Promise<string[]> {
  const found = await Promise.all(ACCELERATOR_NODES.map(async ([rel, name]) => ((await exists(root, rel)) ? name : undefined)));
  return found.filter((n): n is string => n !== undefined);
}
