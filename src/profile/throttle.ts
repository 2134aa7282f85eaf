import type { ThrottleFlags } from './types.js';

// Raspberry Pi firmware `get_throttled` bits (raspberrypi.com documentation, "vcgencmd get_throttled"):
//   0 under-voltage now   1 ARM frequency capped now   2 throttled now   3 soft temperature limit now
//  16 under-voltage has occurred  17 capping has occurred  18 throttling has occurred  19 soft limit has occurred

/**
 * "throttled=0x50005" (vcgencmd) or "50005" (the sysfs file, hex without 0x) → flags; undefined when the
 * text is not a hex number. `source` names where it came from, for the notes.
 */
export function parseThrottleFlags(text: string, source: string): ThrottleFlags | undefined {
  const t = text.trim().replace(/^throttled=/, '');
  if (!/^(0x)?[0-9a-f]+$/i.test(t)) return undefined;
  const v = parseInt(t.replace(/^0x/i, ''), 16);
  const bit = (n: number) => (v & (1 << n)) !== 0;
  return {
    raw: `0x${v.toString(16)}`,
    underVoltage: bit(0),
    frequencyCapped: bit(1),
    throttled: bit(2),
    softTempLimit: bit(3),
    occurred: { underVoltage: bit(16), frequencyCapped: bit(17), throttled: bit(18), softTempLimit: bit(19) },
    source,
  };
}

/** Any "now" bit set: latency measured now is not what the board does when cool and well powered. */
export function isThrottledNow(f: ThrottleFlags): boolean {
  return f.underVoltage || f.frequencyCapped || f.throttled || f.softTempLimit;
}

/** A short human line: "under-voltage now; throttling has occurred since boot". */
export function describeThrottle(f: ThrottleFlags): string {
  const now = [f.underVoltage && 'under-voltage', f.frequencyCapped && 'ARM frequency capped', f.throttled && 'throttled', f.softTempLimit && 'soft temperature limit'].filter(Boolean);
  const past = [f.occurred.underVoltage && 'under-voltage', f.occurred.frequencyCapped && 'frequency capping', f.occurred.throttled && 'throttling', f.occurred.softTempLimit && 'soft temperature limit'].filter(Boolean);
  const parts = [];
  if (now.length) parts.push(`${now.join(', ')} now`);
  if (past.length) parts.push(`${past.join(', ')} since boot`);
  return parts.length ? `${parts.join('; ')} (${f.raw} from ${f.source})` : `none (${f.raw} from ${f.source})`;
}

/** `vcgencmd measure_temp` → °C ("temp=62.3'C"). */
export function parseVcgencmdTemp(text: string): number | undefined {
  const m = /temp=(-?\d+(?:\.\d+)?)'C/.exec(text);
  return m ? Number(m[1]) : undefined;
}
