// Watches the device's speed conditions around a benchmark (full readings before and after, cheap sysfs samples in
// between) and judges whether the result was taken while throttled. The sampling is async file reads on a timer in
// the parent; the model runs in its own process, so this never competes with the event loop for long.
import { formatThrottled } from './parse.js';
import { readSnapshot, type ProbeOptions, type Snapshot } from './probe.js';

export interface EnvReport {
  /** the busiest CPU's frequency (MHz): max over CPUs of scaling_cur_freq */
  freqMHzBefore?: number;
  freqMHzAfter?: number;
  /** range of the busiest CPU's frequency over the samples taken during the timed runs */
  freqMHzMin?: number;
  freqMHzMax?: number;
  /** the lowest per-CPU frequency cap (scaling_max_freq) and what the hardware allows (cpuinfo_max_freq) */
  capMHzBefore?: number;
  capMHzAfter?: number;
  hwMaxMHz?: number;
  /** Raspberry Pi: the real ARM clock from the firmware */
  armClockMHzBefore?: number;
  armClockMHzAfter?: number;
  tempCBefore?: number;
  tempCAfter?: number;
  tempCMax?: number;
  /** Raspberry Pi get_throttled words as read, and the conditions they name (in force, or newly occurred) */
  throttledRaw?: { before?: string; after?: string; source: string };
  throttledFlags: string[];
  /** Jetson nvpmodel power mode */
  powerMode?: { name: string; id?: number };
  /** 1-minute load average before the run, and the CPU count it compares to */
  loadAvgBefore?: number;
  cpus?: number;
  samples: number;
  /** true when a throttle bit, a frequency drop or a lowered cap was seen; null when nothing could tell */
  throttled: boolean | null;
  /** sentences for the report: what makes this result suspect */
  warnings: string[];
  /** what could not be read, and other context */
  notes: string[];
}

// A drop of the busiest CPU's clock by more than this share during the timed runs counts as a frequency change.
const FREQ_DROP = 0.1;
const TEMP_RISE_C = 10;

const busiest = (s: Snapshot) => (s.freqMHz ? Math.max(...s.freqMHz) : undefined);
const lowestCap = (s: Snapshot) => (s.capMHz ? Math.min(...s.capMHz) : undefined);
const defined = <T>(xs: Array<T | undefined>): T[] => xs.filter((x): x is T => x !== undefined);

/** Judges a run from its readings. `during` are the samples of the timed phase (all samples when it was not marked). */
export function assessEnv(before: Snapshot, during: Snapshot[], after: Snapshot): EnvReport {
  const r: EnvReport = { throttledFlags: [], samples: during.length, throttled: null, warnings: [], notes: [] };
  let known = false;
  let bad = false;

  const fb = busiest(before), fa = busiest(after);
  if (fb !== undefined) r.freqMHzBefore = fb;
  if (fa !== undefined) r.freqMHzAfter = fa;
  const series = defined(during.map(busiest));
  if (series.length) {
    known = true;
    r.freqMHzMin = Math.min(...series);
    r.freqMHzMax = Math.max(...series);
    if (r.freqMHzMin < r.freqMHzMax * (1 - FREQ_DROP)) {
      bad = true;
      r.warnings.push(`CPU frequency changed during the timed runs (${r.freqMHzMin}-${r.freqMHzMax} MHz): the governor or a thermal limit moved the clock, so the samples mix two speeds`);
    }
  } else if (fb === undefined) {
    r.notes.push('CPU frequency unknown (no cpufreq in /sys/devices/system/cpu; VMs and containers often hide it)');
  }

  const cb = lowestCap(before), ca = lowestCap(after);
  if (cb !== undefined) r.capMHzBefore = cb;
  if (ca !== undefined) r.capMHzAfter = ca;
  const hw = before.hwMaxMHz ?? after.hwMaxMHz;
  if (hw) r.hwMaxMHz = Math.max(...hw);
  if (cb !== undefined && ca !== undefined) {
    known = true;
    if (ca < cb) {
      bad = true;
      r.warnings.push(`the CPU frequency cap fell from ${cb} to ${ca} MHz during the run (thermal or power limit)`);
    }
  }
  if (r.hwMaxMHz !== undefined && cb !== undefined && cb < r.hwMaxMHz) {
    r.notes.push(`CPU frequency is capped at ${cb} of ${r.hwMaxMHz} MHz (power mode, governor limit or thermal cap); results hold for this setting only`);
  }

  if (before.armClockMHz !== undefined) r.armClockMHzBefore = before.armClockMHz;
  if (after.armClockMHz !== undefined) r.armClockMHzAfter = after.armClockMHz;

  if (before.tempC !== undefined) r.tempCBefore = before.tempC;
  if (after.tempC !== undefined) r.tempCAfter = after.tempC;
  const temps = defined([before.tempC, ...during.map((s) => s.tempC), after.tempC]);
  if (temps.length) {
    r.tempCMax = Math.max(...temps);
    if (r.tempCBefore !== undefined && r.tempCMax - r.tempCBefore >= TEMP_RISE_C) {
      r.notes.push(`temperature rose from ${r.tempCBefore} to ${r.tempCMax} °C during the run; longer runs may throttle`);
    }
  } else {
    r.notes.push('temperature unknown (no thermal zone)');
  }

  const tb = before.throttle, ta = after.throttle;
  if (tb || ta) {
    known = true;
    r.throttledRaw = {
      ...(tb ? { before: formatThrottled(tb) } : {}),
      ...(ta ? { after: formatThrottled(ta) } : {}),
      source: before.throttleSource ?? after.throttleSource ?? 'get_throttled',
    };
    const flags = new Set<string>([...(tb?.now ?? []), ...(ta?.now ?? [])]);
    // A sticky bit that was clear before and set after means the condition came and went during the run.
    if (tb && ta) for (const f of ta.sinceBoot) if (!tb.sinceBoot.includes(f)) flags.add(f);
    r.throttledFlags = [...flags];
    if (flags.size) {
      bad = true;
      r.warnings.push(`the Raspberry Pi firmware reports ${[...flags].join(', ')} (get_throttled ${r.throttledRaw.before ?? '?'} before, ${r.throttledRaw.after ?? '?'} after)`);
    }
  }

  // Other processes competing for the cores stretch runs the way throttling does, but they are not throttling: a
  // warning, not a flag. The 1-minute average lags, so only a load above the CPU count counts as busy.
  if (before.loadAvg1 !== undefined) {
    r.loadAvgBefore = before.loadAvg1;
    if (before.cpus !== undefined) {
      r.cpus = before.cpus;
      if (before.loadAvg1 >= before.cpus) {
        r.warnings.push(`the device was busy before the run (load average ${before.loadAvg1} on ${before.cpus} CPUs): other processes compete for the cores, so latencies are inflated and vary`);
      }
    }
  }

  if (before.powerMode) r.powerMode = before.powerMode;
  if (before.powerMode && after.powerMode && before.powerMode.name !== after.powerMode.name) {
    bad = true;
    r.warnings.push(`the Jetson power mode changed during the run (${before.powerMode.name} → ${after.powerMode.name})`);
  }

  r.throttled = bad ? true : known ? false : null;
  if (r.throttled === null) r.notes.push('throttling unknown: this device exposes neither cpufreq nor a firmware throttle state');
  return r;
}

export interface MonitorOptions extends ProbeOptions {
  /** sample period during the run; 0 disables the timer (tests call sample()) */
  intervalMs?: number;
}

/** Readings around one benchmark: start() → markTimed() when the timed runs begin → stop(). */
export class EnvMonitor {
  private readonly samples: Snapshot[] = [];
  private timedFrom: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly t0 = Date.now();

  private constructor(private readonly opts: MonitorOptions, private readonly before: Snapshot) {}

  static async start(opts: MonitorOptions = {}): Promise<EnvMonitor> {
    const m = new EnvMonitor(opts, await readSnapshot(0, true, opts));
    const every = opts.intervalMs ?? 250;
    if (every > 0) {
      m.timer = setInterval(() => { void m.sample(); }, every);
      m.timer.unref();
    }
    return m;
  }

  /** Takes one cheap reading now (skipped while the previous one is still being read). */
  async sample(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = readSnapshot(Date.now() - this.t0, false, this.opts).then((s) => { this.samples.push(s); }, () => {}).finally(() => { this.inFlight = undefined; });
    return this.inFlight;
  }

  /** Marks the start of the timed runs: frequency changes during warm-up (the governor ramping up) are expected. */
  markTimed(): void {
    this.timedFrom ??= this.samples.length;
  }

  /** Stops sampling without a final reading (the benchmark failed or was canceled). */
  dispose(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async stop(): Promise<EnvReport> {
    if (this.timer) clearInterval(this.timer);
    await this.inFlight;
    const after = await readSnapshot(Date.now() - this.t0, true, this.opts);
    const during = this.timedFrom === undefined ? this.samples : this.samples.slice(this.timedFrom);
    return assessEnv(this.before, during, after);
  }
}
