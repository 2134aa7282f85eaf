import type { CommandName, CommandSource } from './commands.js';
import { readText } from './probes.js';
import { parseNvpmodel, parseTegrastats, type TegraStats } from './tegra.js';
import { isThrottledNow, parseThrottleFlags, parseVcgencmdTemp } from './throttle.js';
import type { ThrottleFlags } from './types.js';

// The board vendors' own tools: Raspberry Pi firmware (vcgencmd) and NVIDIA Jetson (nvpmodel, tegrastats).
// They are asked only on the boards that have them, so a PC never pays for a failed spawn.

export interface VendorFacts {
  throttleFlags?: ThrottleFlags;
  tempC?: number;
  powerMode?: { name: string; id?: number };
  tegrastats?: TegraStats;
  notes: string[];
}

export interface VendorContext {
  root: string;
  commands: CommandSource | undefined;
  isPi: boolean;
  isJetson: boolean;
  /** The sysfs get_throttled reading, if any: vcgencmd is asked too, and wins when they disagree. */
  sysfsThrottle?: ThrottleFlags;
  needTemp: boolean;
}

async function run(ctx: VendorContext, name: CommandName, notes: string[]): Promise<string | undefined> {
  if (!ctx.commands) return undefined;
  const r = await ctx.commands.run(name);
  if (r.note) notes.push(r.note);
  return r.text;
}

export async function probeVendorTools(ctx: VendorContext): Promise<VendorFacts> {
  const notes: string[] = [];
  const out: VendorFacts = { notes };
  if (ctx.isPi) {
    const [throttledText, tempText] = await Promise.all([
      run(ctx, 'vcgencmd-get_throttled', notes),
      ctx.needTemp ? run(ctx, 'vcgencmd-measure_temp', notes) : undefined,
    ]);
    const fromTool = throttledText === undefined ? undefined : parseThrottleFlags(throttledText, 'vcgencmd get_throttled');
    if (throttledText !== undefined && !fromTool) notes.push(`thermal: vcgencmd get_throttled printed "${throttledText.trim().slice(0, 60)}", not a hex value`);
    // Some kernels' sysfs get_throttled reads 0 while the firmware reports throttling (raspberrypi/linux#2367).
    if (fromTool && ctx.sysfsThrottle && fromTool.raw !== ctx.sysfsThrottle.raw) {
      notes.push(`thermal: ${ctx.sysfsThrottle.source} says ${ctx.sysfsThrottle.raw} but vcgencmd says ${fromTool.raw}; using vcgencmd`);
    }
    out.throttleFlags = fromTool ?? ctx.sysfsThrottle;
    if (tempText !== undefined) out.tempC = parseVcgencmdTemp(tempText);
  } else {
    out.throttleFlags = ctx.sysfsThrottle;
  }
  if (ctx.isJetson) {
    const [pm, ts, status] = await Promise.all([
      run(ctx, 'nvpmodel-q', notes),
      run(ctx, 'tegrastats', notes),
      readText(ctx.root, 'var/lib/nvpmodel/status'),
    ]);
    out.powerMode = pm === undefined ? undefined : parseNvpmodel(pm);
    // nvpmodel keeps the active mode id in this file ("pmode:0002 fmode:…"); enough when the tool is absent.
    const id = status === undefined ? undefined : /pmode:(\d+)/.exec(status)?.[1];
    if (!out.powerMode && id !== undefined) out.powerMode = { name: `mode ${Number(id)}`, id: Number(id) };
    if (!out.powerMode) notes.push('thermal: Jetson power mode unknown (no nvpmodel output or /var/lib/nvpmodel/status)');
    out.tegrastats = ts === undefined ? undefined : parseTegrastats(ts.split('\n')[0]);
    if (ts !== undefined && !out.tegrastats) notes.push('thermal: tegrastats printed a line this parser does not know');
    if (ctx.needTemp && out.tegrastats) {
      const t = out.tegrastats.tempsC;
      out.tempC = t.cpu ?? t.CPU ?? t.tj;
    }
  }
  if (out.throttleFlags && isThrottledNow(out.throttleFlags)) notes.push('thermal: the board is throttling or under-powered now; latency measured now will be worse than normal');
  return out;
}
