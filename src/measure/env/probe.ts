// Reads the device's speed conditions once: CPU frequencies and caps (cpufreq sysfs), temperature (thermal zones),
// Raspberry Pi throttling (vcgencmd or the firmware's sysfs node) and the Jetson power mode (nvpmodel). Every source
// fails soft: what cannot be read stays undefined and the caller says so.
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { probeTemperature, readText } from '../../profile/probes.js';
import { decodeThrottled, parseKHz, parseLoadAvg, parseMeasureClock, parseNvpmodel, type PowerMode, type ThrottleState } from './parse.js';

/** Runs a tool and gives its stdout, or undefined when it is missing, fails or takes over 2 s. */
export type ExecFn = (cmd: string, args: string[]) => Promise<string | undefined>;

export const execTool: ExecFn = (cmd, args) => new Promise((resolve) => {
  execFile(cmd, args, { timeout: 2000, encoding: 'utf8' }, (err, stdout) => resolve(err ? undefined : stdout));
});

export interface Snapshot {
  /** ms since the monitor started */
  t: number;
  /** scaling_cur_freq per CPU (MHz), in CPU order */
  freqMHz?: number[];
  /** scaling_max_freq per CPU: the cap the governor, a thermal driver or nvpmodel sets */
  capMHz?: number[];
  /** cpuinfo_max_freq per CPU: what the hardware can do */
  hwMaxMHz?: number[];
  /** Raspberry Pi: the ARM clock the firmware really runs (vcgencmd measure_clock arm) */
  armClockMHz?: number;
  tempC?: number;
  throttle?: ThrottleState;
  /** where `throttle` came from, for the report */
  throttleSource?: string;
  powerMode?: PowerMode;
  /** 1-minute load average (/proc/loadavg) and the CPUs it compares to */
  loadAvg1?: number;
  cpus?: number;
}

const CPU_DIR = 'sys/devices/system/cpu';

async function cpuNames(root: string): Promise<string[]> {
  try {
    return (await readdir(join(root, CPU_DIR))).filter((n) => /^cpu\d+$/.test(n)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  } catch {
    return [];
  }
}

async function readPerCpu(root: string, cpus: string[], file: string): Promise<number[] | undefined> {
  const vals = await Promise.all(cpus.map(async (c) => parseKHz((await readText(root, `${CPU_DIR}/${c}/cpufreq/${file}`)) ?? '')));
  const known = vals.filter((v): v is number => v !== undefined);
  return known.length ? known : undefined;
}

async function readSysfsThrottle(root: string): Promise<{ state: ThrottleState; source: string } | undefined> {
  const candidates = ['sys/devices/platform/soc/soc:firmware/get_throttled'];
  // The Pi 5 names its SoC node by address (soc@107c000000).
  try {
    for (const d of (await readdir(join(root, 'sys/devices/platform'))).filter((x) => x.startsWith('soc@'))) {
      for (const sub of (await readdir(join(root, 'sys/devices/platform', d))).filter((x) => x.includes('firmware'))) {
        candidates.push(`sys/devices/platform/${d}/${sub}/get_throttled`);
      }
    }
  } catch { /* no platform tree */ }
  for (const rel of candidates) {
    const text = await readText(root, rel);
    const state = text === undefined ? undefined : decodeThrottled(text);
    if (state) return { state, source: `/${rel}` };
  }
  return undefined;
}

export interface ProbeOptions {
  /** filesystem root to read /sys from ('/' on a device, a fixture tree in tests) */
  root?: string;
  /** how to run vcgencmd / nvpmodel; tests pass recorded outputs */
  exec?: ExecFn;
}

/**
 * One reading. `full` adds what costs a process spawn (vcgencmd, nvpmodel): taken before and after a benchmark,
 * never during it, so the probe does not steal CPU from the model it measures.
 */
export async function readSnapshot(t: number, full: boolean, opts: ProbeOptions = {}): Promise<Snapshot> {
  const root = opts.root ?? '/';
  const exec = opts.exec ?? execTool;
  const cpus = await cpuNames(root);
  const [freqMHz, tempC] = await Promise.all([readPerCpu(root, cpus, 'scaling_cur_freq'), probeTemperature(root)]);
  const snap: Snapshot = { t };
  if (freqMHz) snap.freqMHz = freqMHz;
  if (tempC !== undefined) snap.tempC = tempC;
  if (!full) return snap;
  const [capMHz, hwMaxMHz, loadText] = await Promise.all([
    readPerCpu(root, cpus, 'scaling_max_freq'), readPerCpu(root, cpus, 'cpuinfo_max_freq'), readText(root, 'proc/loadavg'),
  ]);
  const load = loadText === undefined ? undefined : parseLoadAvg(loadText);
  if (load !== undefined) {
    snap.loadAvg1 = load;
    if (cpus.length) snap.cpus = cpus.length;
  }
  if (capMHz) snap.capMHz = capMHz;
  if (hwMaxMHz) snap.hwMaxMHz = hwMaxMHz;
  // vcgencmd first: on some kernels the sysfs node reads 0 while the firmware reports throttling.
  const vc = await exec('vcgencmd', ['get_throttled']);
  const vcState = vc === undefined ? undefined : decodeThrottled(vc);
  if (vcState) {
    snap.throttle = vcState;
    snap.throttleSource = 'vcgencmd get_throttled';
    const clock = parseMeasureClock((await exec('vcgencmd', ['measure_clock', 'arm'])) ?? '');
    if (clock !== undefined) snap.armClockMHz = clock;
  } else {
    const fromSysfs = await readSysfsThrottle(root);
    if (fromSysfs) { snap.throttle = fromSysfs.state; snap.throttleSource = fromSysfs.source; }
  }
  const nv = await exec('nvpmodel', ['-q']);
  const mode = nv === undefined ? undefined : parseNvpmodel(nv);
  if (mode) snap.powerMode = mode;
  return snap;
}
