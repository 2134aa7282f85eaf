// Pure parsers for what the device says about its own speed: Raspberry Pi firmware (`vcgencmd`), Jetson power
// modes (`nvpmodel -q`) and cpufreq sysfs files. Each returns undefined for text it cannot read, never a stand-in.
import { parseThrottled } from '../../profile/sysfs.js';

/**
 * `get_throttled` bits (Raspberry Pi documentation, "vcgencmd get_throttled"): 0-3 hold now, 16-19 have happened
 * since boot. The same word comes from `vcgencmd get_throttled` ("throttled=0x50005") and from the firmware's sysfs
 * node (hex without the 0x).
 */
const NOW_BITS: ReadonlyArray<[number, string]> = [
  [0, 'under-voltage'], [1, 'arm-frequency-capped'], [2, 'throttled'], [3, 'soft-temperature-limit'],
];

export interface ThrottleState {
  raw: number;
  /** conditions in force when read */
  now: string[];
  /** conditions that have occurred since boot (sticky until reboot) */
  sinceBoot: string[];
}

export function decodeThrottled(text: string): ThrottleState | undefined {
  // vcgencmd output may come with other lines (measure_temp in the same capture); the sysfs node holds the word alone.
  const word = /throttled=(0x[0-9a-f]+)/i.exec(text)?.[1] ?? text.trim();
  // parseThrottled (profile) decides whether the text is a get_throttled word at all.
  if (parseThrottled(word) === undefined) return undefined;
  const raw = parseInt(word.replace(/^throttled=/, '').replace(/^0x/i, ''), 16);
  return {
    raw,
    now: NOW_BITS.filter(([b]) => (raw >> b) & 1).map(([, n]) => n),
    sinceBoot: NOW_BITS.filter(([b]) => (raw >> (b + 16)) & 1).map(([, n]) => n),
  };
}

export function formatThrottled(s: ThrottleState): string {
  return `0x${s.raw.toString(16)}`;
}

/** `vcgencmd measure_temp` → °C ("temp=62.3'C"). */
export function parseMeasureTemp(text: string): number | undefined {
  const m = /temp=(-?\d+(?:\.\d+)?)'C/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * `vcgencmd measure_clock arm` → MHz ("frequency(48)=1500398464"). On a Pi this is the clock the firmware really
 * runs, which cpufreq's scaling_cur_freq does not show once the firmware throttles.
 */
export function parseMeasureClock(text: string): number | undefined {
  const m = /frequency\(\d+\)=(\d+)/.exec(text);
  if (!m) return undefined;
  const hz = Number(m[1]);
  return hz > 0 ? Math.round(hz / 1e6) : undefined;
}

export interface PowerMode {
  name: string;
  id?: number;
}

/**
 * `nvpmodel -q` → the Jetson power mode: a "NV Power Mode: <name>" line, then the mode id on a line of its own.
 * Other lines (fan mode, NVPM ERROR/WARN when run without root) are ignored.
 */
export function parseNvpmodel(text: string): PowerMode | undefined {
  const lines = text.split('\n').map((l) => l.trim());
  const i = lines.findIndex((l) => /^NV Power Mode:/i.test(l));
  if (i < 0) return undefined;
  const name = lines[i].replace(/^NV Power Mode:\s*/i, '').trim();
  if (!name) return undefined;
  const idLine = lines.slice(i + 1).find((l) => l !== '');
  return /^\d+$/.test(idLine ?? '') ? { name, id: Number(idLine) } : { name };
}

/** A cpufreq file in kHz (scaling_cur_freq, scaling_max_freq, cpuinfo_max_freq) → MHz. */
export function parseKHz(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const khz = Number(t);
  return khz > 0 ? Math.round(khz / 1000) : undefined;
}

/** /proc/loadavg → the 1-minute load average ("0.52 0.58 0.59 1/467 12345"). */
export function parseLoadAvg(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s/.exec(text);
  return m ? Number(m[1]) : undefined;
}
