// The fleet as the broker's retained messages describe it: one record per device, folded from status,
// profile, deployed and health documents. Pure: messages in, records out; no MQTT here.
import type { DeviceProfile, Recipe, Target } from '../types.js';
import { matchTarget } from '../targets/match.js';
import { recipeLabel } from '../schema/recipe.js';
import { errorMessage } from '../errors.js';
import type { RetainedKind } from './topics.js';

/** What runs on a device now, read leniently from its retained `deployed` document. */
export interface DeployedInfo {
  sha256?: string;
  path?: string;
  recipe?: Recipe;
  /** recipeLabel(recipe), or undefined when the device did not say which recipe. */
  label?: string;
  since?: string;
  previousSha256?: string;
}

export interface DeviceRecord {
  device: string;
  /** undefined: no status seen yet (the device never connected to this broker, or its retained status was cleared). */
  online?: boolean;
  session?: number;
  statusTs?: string;
  version?: string;
  profile?: DeviceProfile;
  /** The hardware target its profile matches (same rules as on the device); undefined with a note when unknown. */
  target?: string;
  targetNote?: string;
  deployed?: DeployedInfo;
  health?: Record<string, unknown>;
}

export type TargetOf = (profile: DeviceProfile) => { name?: string; note?: string };

/** Matches profiles against the target files; a profile no target fits gets a note, never a made-up name. */
export function targetMatcher(targets: Target[]): TargetOf {
  return (profile) => {
    try {
      const m = matchTarget(profile, targets);
      return { name: m.target.name, ...(m.fallback ? { note: 'fallback target: no specific target matched' } : {}) };
    } catch (e) {
      return { note: errorMessage(e) };
    }
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseDeployed(doc: unknown): DeployedInfo | undefined {
  if (!isObject(doc)) return undefined;
  const model = isObject(doc.model) ? doc.model : {};
  const sha256 = typeof model.sha256 === 'string' ? model.sha256 : typeof doc.sha256 === 'string' ? doc.sha256 : undefined;
  const recipe = isObject(doc.recipe) ? (doc.recipe as Recipe) : undefined;
  const prev = isObject(doc.previous) ? doc.previous : undefined;
  const prevModel = prev && isObject(prev.model) ? prev.model : prev;
  return {
    sha256,
    ...(typeof model.path === 'string' ? { path: model.path } : {}),
    ...(recipe ? { recipe, label: recipeLabel(recipe) } : {}),
    ...(typeof doc.since === 'string' ? { since: doc.since } : {}),
    ...(prevModel && typeof prevModel.sha256 === 'string' ? { previousSha256: prevModel.sha256 } : {}),
  };
}

export class FleetView {
  private readonly byId = new Map<string, DeviceRecord>();

  constructor(private readonly targetOf?: TargetOf) {}

  get size(): number {
    return this.byId.size;
  }

  get(device: string): DeviceRecord | undefined {
    return this.byId.get(device);
  }

  records(): DeviceRecord[] {
    return [...this.byId.values()].sort((a, b) => a.device.localeCompare(b.device));
  }

  /**
   * Folds one retained document in; `doc` null means the retained message was cleared. Returns whether the
   * record changed. A status from an older session than the one known (a late last will) is ignored.
   */
  apply(device: string, kind: RetainedKind, doc: unknown): boolean {
    const rec = this.byId.get(device) ?? { device };
    this.byId.set(device, rec);
    if (kind === 'status') return this.applyStatus(rec, doc);
    if (kind === 'profile') {
      if (!isObject(doc)) {
        delete rec.profile;
        delete rec.target;
        rec.targetNote = 'no profile published';
        return true;
      }
      rec.profile = doc as unknown as DeviceProfile;
      const t = this.targetOf?.(rec.profile);
      rec.target = t?.name;
      if (t?.note) rec.targetNote = t.note;
      else delete rec.targetNote;
      return true;
    }
    if (kind === 'deployed') {
      const d = parseDeployed(doc);
      if (d) rec.deployed = d;
      else delete rec.deployed;
      return true;
    }
    if (isObject(doc)) rec.health = doc;
    else delete rec.health;
    return true;
  }

  private applyStatus(rec: DeviceRecord, doc: unknown): boolean {
    if (!isObject(doc)) {
      delete rec.online;
      delete rec.session;
      return true;
    }
    const session = typeof doc.session === 'number' ? doc.session : undefined;
    if (session !== undefined && rec.session !== undefined && session < rec.session) return false;
    rec.online = doc.state === 'online' ? true : doc.state === 'offline' ? false : undefined;
    rec.session = session;
    if (typeof doc.ts === 'string') rec.statusTs = doc.ts;
    if (typeof doc.version === 'string') rec.version = doc.version;
    return true;
  }
}
