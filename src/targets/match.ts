import { EdgetuneError } from '../errors.js';
import type { DeviceProfile, MatchedTarget, Target } from '../types.js';

/** The parts of a profile that matching looks at. */
export type MatchInput = Pick<DeviceProfile, 'arch' | 'board'> & { cpu: Pick<DeviceProfile['cpu'], 'isa'> };

export interface TargetVerdict {
  name: string;
  matches: boolean;
  /** Higher is more specific: a board match outweighs any ISA list, an ISA condition outweighs arch alone. */
  score: number;
  held: string[];
  failed: string[];
}

/** Checks every condition of one target against a profile (pure; no condition means "any"). */
export function evaluateTarget(p: MatchInput, t: Target): TargetVerdict {
  const held: string[] = [];
  const failed: string[] = [];
  let score = 0;
  const m = t.match;
  if (m.arch) {
    score += 1;
    const ok = (m.arch as string[]).includes(p.arch);
    (ok ? held : failed).push(`arch ${p.arch} ${ok ? 'is' : 'is not'} one of [${m.arch.join(', ')}]`);
  }
  if (m.boardIncludes) {
    score += 1000;
    const board = p.board?.toLowerCase();
    const hit = board === undefined ? undefined : m.boardIncludes.find((s) => board.includes(s.toLowerCase()));
    if (p.board === undefined) failed.push(`board unknown (wants one of ${m.boardIncludes.map((s) => `"${s}"`).join(', ')})`);
    else if (hit) held.push(`board "${p.board}" contains "${hit}"`);
    else failed.push(`board "${p.board}" contains none of ${m.boardIncludes.map((s) => `"${s}"`).join(', ')}`);
  }
  if (m.isaAll?.length) {
    score += 10 * m.isaAll.length;
    const missing = m.isaAll.filter((f) => !p.cpu.isa.includes(f));
    if (missing.length) failed.push(`CPU lacks ${missing.join(', ')}`);
    else held.push(`CPU has ${m.isaAll.join(', ')}`);
  }
  if (m.isaNone?.length) {
    score += 5 * m.isaNone.length;
    const present = m.isaNone.filter((f) => p.cpu.isa.includes(f));
    if (present.length) failed.push(`CPU has ${present.join(', ')} (this target is for CPUs without)`);
    else held.push(`CPU lacks ${m.isaNone.join(', ')}`);
  }
  return { name: t.name, matches: failed.length === 0, score, held, failed };
}

/**
 * Picks the most specific target whose conditions all hold (a board match beats arch or ISA alone; ties go
 * to the first name alphabetically). When none holds, the target marked `fallbackFor` the profile's arch is
 * returned with `fallback: true` and a `warning:` reason: its defaults are the conservative ones. When the
 * arch's generic target is the best match on its own merits, a `warning:` reason says the device is unknown.
 */
export function matchTarget(profile: MatchInput, targets: Target[]): MatchedTarget {
  const sorted = [...targets].sort((a, b) => a.name.localeCompare(b.name));
  const verdicts = sorted.map((t) => ({ t, v: evaluateTarget(profile, t) }));
  const hits = verdicts.filter((x) => x.v.matches).sort((a, b) => b.v.score - a.v.score);
  if (hits.length) {
    const [best, ...rest] = hits;
    const reasons = [`${best.t.name}: ${best.v.held.length ? best.v.held.join('; ') : 'matches any device'}`];
    const tied = rest.filter((x) => x.v.score === best.v.score).map((x) => x.t.name);
    if (tied.length) reasons.push(`tied on specificity with ${tied.join(', ')}; chose ${best.t.name} by name`);
    const lesser = rest.filter((x) => x.v.score < best.v.score).map((x) => x.t.name);
    if (lesser.length) reasons.push(`also matched, less specific: ${lesser.join(', ')}`);
    // The arch's generic target matching on its own means no board or ISA target knows this device.
    if ((best.t.fallbackFor as string[] | undefined)?.includes(profile.arch)) {
      reasons.unshift(
        `warning: this device is not a known board${profile.board ? ` ("${profile.board}")` : ''} and no more specific target fits; ${best.t.name} is the generic ${profile.arch} target with conservative defaults (add a target file for it to tune better)`,
      );
    }
    return { target: best.t, reasons, fallback: false };
  }
  const fb = verdicts.find((x) => (x.t.fallbackFor as string[] | undefined)?.includes(profile.arch));
  if (!fb) {
    throw new EdgetuneError(
      'TARGET_INVALID',
      `no target matches this device (arch ${profile.arch}${profile.board ? `, board "${profile.board}"` : ''}) and none is marked fallbackFor ${profile.arch}; add a target file for it`,
    );
  }
  return {
    target: fb.t,
    reasons: [
      `warning: no target matched this device; using ${fb.t.name}, the fallback for ${profile.arch}, whose defaults are conservative`,
      `${fb.t.name}: ${fb.v.failed.join('; ')}`,
    ],
    fallback: true,
  };
}
