// Pure parsers for the small /proc, /sys and /etc files the profile reads. Each returns undefined for
// text it cannot read, never a stand-in number.

/** /proc/device-tree/model is a NUL-terminated C string; an empty one means "no model". */
export function parseDeviceTreeModel(text: string): string | undefined {
  const s = text.replace(/\0+$/g, '').replace(/\0/g, ' ').trim();
  return s || undefined;
}

/**
 * cpufreq `cpuinfo_max_freq` values (kHz, one per CPU, in CPU order) → distinct MHz in CPU order, i.e. one
 * per cluster on big.LITTLE parts (clusters sharing a top frequency collapse into one entry).
 */
export function clustersFromMaxFreqs(kHzTexts: string[]): number[] {
  const out: number[] = [];
  for (const t of kHzTexts) {
    const khz = Number(t.trim());
    if (!Number.isFinite(khz) || khz <= 0 || t.trim() === '') continue;
    const mhz = Math.round(khz / 1000);
    if (!out.includes(mhz)) out.push(mhz);
  }
  return out;
}

/**
 * /proc/meminfo → MB. MemAvailable is absent before Linux 3.14; then availableMB stays undefined. Swap is
 * reported as the kernel gives it (a 0 SwapTotal is a real "no swap", not an unknown).
 */
export function parseMeminfo(text: string): { totalMB?: number; availableMB?: number; swapTotalMB?: number; swapFreeMB?: number } {
  const kb = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s*(\\d+)\\s*kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const total = kb('MemTotal');
  const avail = kb('MemAvailable');
  const swapTotal = kb('SwapTotal');
  const swapFree = kb('SwapFree');
  return {
    ...(total !== undefined && total > 0 ? { totalMB: Math.round(total / 1024) } : {}),
    ...(avail !== undefined ? { availableMB: Math.round(avail / 1024) } : {}),
    ...(swapTotal !== undefined ? { swapTotalMB: Math.round(swapTotal / 1024) } : {}),
    ...(swapFree !== undefined ? { swapFreeMB: Math.round(swapFree / 1024) } : {}),
  };
}

/** /etc/os-release → PRETTY_NAME (or NAME VERSION). */
export function parseOsRelease(text: string): string | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2'));
  }
  const pretty = fields.get('PRETTY_NAME');
  if (pretty) return pretty;
  const name = [fields.get('NAME'), fields.get('VERSION')].filter(Boolean).join(' ');
  return name || undefined;
}

/** A thermal_zone `temp` (millidegrees C) → °C with one decimal; impossible readings are undefined. */
export function parseMilliCelsius(text: string): number | undefined {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n)) return undefined;
  const c = Math.round(n / 100) / 10;
  return c > -60 && c < 150 ? c : undefined;
}

/**
 * Raspberry Pi firmware `get_throttled` (hex bit field). Bits 0–3 are the "now" bits: under-voltage,
 * ARM frequency capped, throttled, soft temperature limit; any of them makes latency numbers unreliable.
 * The "has occurred since boot" bits (16–19) are ignored.
 */
export function parseThrottled(text: string): boolean | undefined {
  const t = text.trim().replace(/^throttled=/, '');
  if (!/^(0x)?[0-9a-f]+$/i.test(t)) return undefined;
  return (parseInt(t.replace(/^0x/i, ''), 16) & 0xf) !== 0;
}
