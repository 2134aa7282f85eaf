// Sends one job to many devices and follows it to a verdict per device. Each device gets the job on its own
// topic (not the group or all topic) so the controller knows exactly whose answers to wait for.
import type { JobDoc } from '../agent/jobs.js';
import { CanceledError, errorMessage } from '../errors.js';
import type { FleetSession } from './session.js';
import type { JobTags, TrackedJob, TrackerChange, Verdict } from './tracker.js';

export interface FleetJobSpec {
  type: string;
  params: unknown;
  /** The device aborts the job after this long (TIMED_OUT); the controller waits this plus a grace. */
  timeoutS?: number;
}

/** Timeouts when the user gives none: long enough for a real device, finite so a silent device ends the wait. */
export const DEFAULT_TIMEOUT_S: Record<string, number> = { tune: 3600, bench: 900, deploy: 900, rollback: 600, profile: 120, compress: 1800 };
export const timeoutFor = (spec: FleetJobSpec) => spec.timeoutS ?? DEFAULT_TIMEOUT_S[spec.type] ?? 600;

export interface DispatchOptions {
  jobId: string;
  devices: string[];
  spec: FleetJobSpec;
  tags?: JobTags;
  /** Send to devices whose retained status is not online too (a persistent session may queue it for them). */
  includeOffline?: boolean;
  onChange?: (t: TrackedJob, what: TrackerChange) => void;
  signal?: AbortSignal;
  /** A device that has not acknowledged the job (no status at all) after this long gets it again, same id. */
  resendAfterS?: number;
}

export const FAILED_VERDICTS: ReadonlySet<Verdict> = new Set(['FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT', 'NO_RESPONSE']);

export function jobDoc(id: string, spec: FleetJobSpec): JobDoc {
  return { v: 1, id, type: spec.type, params: spec.params ?? {}, timeoutS: timeoutFor(spec) };
}

/** Publishes the job to every device (offline ones are skipped unless asked); returns the tracked entries. */
export async function sendJobs(session: FleetSession, opts: Omit<DispatchOptions, 'onChange' | 'signal'>): Promise<TrackedJob[]> {
  const job = jobDoc(opts.jobId, opts.spec);
  const entries: TrackedJob[] = [];
  const sends: Array<Promise<void>> = [];
  for (const device of opts.devices) {
    const rec = session.view.get(device);
    if (!opts.includeOffline && rec?.online !== true) {
      const why = !rec || rec.online === undefined ? 'no retained status from this device on the broker' : 'device is offline';
      entries.push(session.tracker.skip(device, job, `${why}; not sent (use --include-offline to queue it anyway)`, opts.tags));
      continue;
    }
    entries.push(session.tracker.add(device, job, timeoutFor(opts.spec), opts.tags));
    sends.push(session.link.publishJob(device, job).catch((e) => {
      session.log.warn('could not publish a job', { device, job: job.id, error: errorMessage(e) });
    }));
  }
  await Promise.all(sends);
  return entries;
}

/**
 * Sends the job and waits for every device's verdict. On cancel (Ctrl-C), the devices still working get a
 * `cancel` job before the CanceledError propagates.
 */
export async function dispatch(session: FleetSession, opts: DispatchOptions): Promise<TrackedJob[]> {
  const onChange = opts.onChange;
  const off = onChange ? session.tracker.events.on('change', (t, what) => { if (t.jobId === opts.jobId) onChange(t, what); }) : undefined;
  try {
    const entries = await sendJobs(session, opts);
    const resend = resender(session, entries, jobDoc(opts.jobId, opts.spec), opts.resendAfterS ?? 15);
    try {
      await session.tracker.wait(entries, { signal: opts.signal, onTick: resend });
    } catch (e) {
      if (e instanceof CanceledError) await cancelJobs(session, entries);
      throw e;
    }
    return entries;
  } finally {
    off?.();
  }
}

/**
 * A broker that dies (SIGKILL, power loss) can lose a job it had acknowledged but not yet saved. Sending it again
 * with the same id is safe: a device that did get it ignores the copy (job ids are never run twice). Up to 3 times,
 * only to devices shown online.
 */
function resender(session: FleetSession, entries: TrackedJob[], job: ReturnType<typeof jobDoc>, afterS: number): () => void {
  const sent = new Map<TrackedJob, { at: number; n: number }>();
  return () => {
    const now = session.clock.now();
    for (const t of entries) {
      if (t.verdict || t.state !== 'SENT' || session.view.get(t.device)?.online !== true) continue;
      const s = sent.get(t) ?? { at: t.sentAt, n: 0 };
      if (s.n >= 3 || now - s.at < afterS * 1000) continue;
      sent.set(t, { at: now, n: s.n + 1 });
      session.log.warn('no acknowledgement from a device; sending the job again (same id, so it never runs twice)', { device: t.device, job: t.jobId });
      session.link.publishJob(t.device, job).catch(() => {});
    }
  };
}

/** Asks every device whose entry is unfinished to cancel it (a `cancel` job naming its id); marks them CANCELED. */
export async function cancelJobs(session: FleetSession, entries: TrackedJob[]): Promise<void> {
  const open = entries.filter((t) => !t.verdict);
  await Promise.all(open.map((t) =>
    session.link.publishJob(t.device, { v: 1, id: `${t.jobId}-cancel`.slice(0, 64), type: 'cancel', params: { id: t.jobId } })
      .catch((e) => session.log.warn('could not send cancel', { device: t.device, error: errorMessage(e) }))));
}

export interface OutcomeCounts {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  byVerdict: Record<string, number>;
}

export function countOutcomes(entries: TrackedJob[]): OutcomeCounts {
  const byVerdict: Record<string, number> = {};
  for (const e of entries) byVerdict[e.verdict ?? 'PENDING'] = (byVerdict[e.verdict ?? 'PENDING'] ?? 0) + 1;
  return {
    total: entries.length,
    succeeded: byVerdict.SUCCEEDED ?? 0,
    failed: entries.filter((e) => e.verdict && FAILED_VERDICTS.has(e.verdict)).length,
    skipped: byVerdict.SKIPPED ?? 0,
    byVerdict,
  };
}
