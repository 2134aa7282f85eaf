import { profileDevice } from '../profile/index.js';
import type { DeviceProfile, MatchedTarget } from '../types.js';
import { loadTargets, defaultTargetDirs } from './load.js';
import { matchTarget } from './match.js';

/** Profiles this device and matches it to a target; the one place CLI commands get "where am I running". */
export async function thisDevice(opts: { targetsDir?: string } = {}): Promise<{ profile: DeviceProfile; matched: MatchedTarget }> {
  const profile = await profileDevice();
  const matched = matchTarget(profile, await loadTargets(defaultTargetDirs(opts.targetsDir)));
  return { profile, matched };
}
