// The controller's side of the MQTT contract (DESIGN.md §5): the wildcard filters it listens on, shared
// subscriptions for collectors, and the parse from a concrete topic back to (device, kind, job id).
// The per-device topic names themselves come from the agent (src/agent/topics.ts), so both sides agree.
import { baseTopic, topics } from '../agent/topics.js';

export type RetainedKind = 'status' | 'profile' | 'deployed' | 'health';
export const RETAINED_KINDS: readonly RetainedKind[] = ['status', 'profile', 'deployed', 'health'];

/** Levels under edgetune/{fleet}/ that address many devices, never one. */
const RESERVED = new Set(['all', 'group']);

export const fleetTopics = {
  /** Every device's retained state of one kind. */
  retained: (fleet: string, kind: RetainedKind) => `edgetune/${fleet}/+/${kind}`,
  /** Status and result of every job of every device (not the job documents themselves: one level less). */
  jobReplies: (fleet: string) => `edgetune/${fleet}/+/jobs/+/+`,
  /** Status and result of one job id on every device. */
  jobRepliesFor: (fleet: string, jobId: string) => `edgetune/${fleet}/+/jobs/${jobId}/+`,
  jobResults: (fleet: string) => `edgetune/${fleet}/+/jobs/+/result`,
  jobStatuses: (fleet: string) => `edgetune/${fleet}/+/jobs/+/status`,
  deviceJob: (fleet: string, device: string, jobId: string) => topics.job(baseTopic({ fleet, deviceId: device }), jobId),
  deviceStatus: (fleet: string, device: string) => topics.status(baseTopic({ fleet, deviceId: device })),
  deviceDeployed: (fleet: string, device: string) => `${baseTopic({ fleet, deviceId: device })}/deployed`,
  deviceHealth: (fleet: string, device: string) => `${baseTopic({ fleet, deviceId: device })}/health`,
  transferChunk: (fleet: string, device: string, transferId: string, index: number) => topics.transferChunk(baseTopic({ fleet, deviceId: device }), transferId, index),
};

/**
 * A shared subscription: the broker hands each matching message to one member of `group` only, so several
 * collectors split the load (MQTT 5 and Mosquitto ≥ 2, EMQX, HiveMQ, VerneMQ; not aedes).
 */
export function sharedFilter(group: string, filter: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(group)) throw new TypeError(`shared subscription group '${group}' must be one topic level of [A-Za-z0-9._-]`);
  return `$share/${group}/${filter}`;
}

export type FleetTopic =
  | { device: string; kind: RetainedKind }
  | { device: string; kind: 'jobStatus' | 'jobResult'; jobId: string };

/** A concrete topic of this fleet → what it is about; undefined for anything else (job documents included). */
export function parseFleetTopic(fleet: string, topic: string): FleetTopic | undefined {
  const prefix = `edgetune/${fleet}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const rest = topic.slice(prefix.length).split('/');
  const device = rest[0];
  if (!device || RESERVED.has(device)) return undefined;
  if (rest.length === 2 && (RETAINED_KINDS as readonly string[]).includes(rest[1])) return { device, kind: rest[1] as RetainedKind };
  if (rest.length === 4 && rest[1] === 'jobs' && rest[2]) {
    if (rest[3] === 'status') return { device, kind: 'jobStatus', jobId: rest[2] };
    if (rest[3] === 'result') return { device, kind: 'jobResult', jobId: rest[2] };
  }
  return undefined;
}
