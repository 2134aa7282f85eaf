// Job documents that arrive over MQTT (DESIGN.md §5): the schema, the states, the status message, and the
// parse step that turns raw bytes into either a runnable job or a rejection naming the field at fault.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TOPIC_LEVEL_PATTERN } from '../schema/config.js';
import { parseWithSchema } from '../schema/validate.js';
import { errorMessage } from '../errors.js';
import type { OpContext } from '../types.js';

export const JobDocSchema = Type.Object(
  {
    v: Type.Literal(1),
    id: Type.String({ pattern: TOPIC_LEVEL_PATTERN }),
    type: Type.String({ minLength: 1 }),
    params: Type.Unknown({ default: {} }),
    timeoutS: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 7 * 24 * 3600 })),
  },
  { additionalProperties: false },
);
export type JobDoc = Static<typeof JobDocSchema>;

export const JOB_STATES = ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT']);

export interface JobError {
  code: string;
  message: string;
}

/** Published on {base}/jobs/{id}/status. `seq` grows by one per message of a job so late QoS 0 updates can be dropped. */
export interface JobStatus {
  v: 1;
  id: string;
  state: JobState;
  progress: { step: string; pct: number; etaS?: number };
  seq: number;
  error?: JobError;
  ts: string;
}

/** What a handler gets besides its params: the job's signal and progress callback, and which job and run it is. */
export interface JobContext extends OpContext {
  jobId?: string;
  /** 1 on the first run, 2 when the agent died under the first, … */
  attempt?: number;
}

/** Runs one job type. Must honour ctx.signal: a timeout or cancel aborts it. */
export type JobHandler = (params: unknown, ctx: JobContext) => Promise<unknown>;

export interface HandlerSpec {
  /** Validates (and fills defaults of) `params` before the job is accepted. */
  params: TSchema;
  /** Checks the schema cannot express (e.g. allowed folders); each issue is `path: message`. Runs before QUEUED. */
  validate?: (params: unknown) => string[];
  run: JobHandler;
  /** Runs at once, beside the heavy job (cancel, config); default false: heavy jobs run one at a time. */
  light?: boolean;
  /**
   * May run again after the agent died under it (the handler is idempotent: outputs written atomically, downloads
   * resumed); default true. False: such a job ends FAILED after a restart.
   */
  resumable?: boolean;
}
export type HandlerMap = Record<string, HandlerSpec>;

export const CancelParamsSchema = Type.Object({ id: Type.String({ pattern: TOPIC_LEVEL_PATTERN }) }, { additionalProperties: false });

export type ParsedJob =
  | { ok: true; job: JobDoc }
  | { ok: false; id: string | undefined; reason: string };

/**
 * Raw payload → job or rejection. A rejection's id is the topic's (where the sender listens), else the payload's.
 */
export function parseJob(
  payload: Uint8Array,
  topicId: string | undefined,
  opts: { maxPayloadBytes: number; handlers: HandlerMap },
): ParsedJob {
  const fallbackId = topicId !== undefined && new RegExp(TOPIC_LEVEL_PATTERN).test(topicId) ? topicId : undefined;
  if (payload.byteLength > opts.maxPayloadBytes) {
    return { ok: false, id: fallbackId, reason: `/: payload is ${payload.byteLength} bytes, over the ${opts.maxPayloadBytes}-byte limit (limits.maxPayloadBytes)` };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch (e) {
    return { ok: false, id: fallbackId, reason: `/: not valid JSON (${errorMessage(e)})` };
  }
  // The topic's id wins: that is where the sender listens for the answer.
  const docId = typeof doc === 'object' && doc !== null ? (doc as { id?: unknown }).id : undefined;
  const id = fallbackId ?? (typeof docId === 'string' && new RegExp(TOPIC_LEVEL_PATTERN).test(docId) ? docId : undefined);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { ok: false, id, reason: '/: a job must be a JSON object {v, id, type, params, timeoutS?}' };
  }
  // Schema checks recurse: a hostile document nested thousands deep would overflow the stack.
  const deep = deeperThan(doc, MAX_DEPTH);
  if (deep) return { ok: false, id, reason: `${deep}: nested deeper than ${MAX_DEPTH} levels` };
  try {
    return checkJob(doc, id, topicId, opts.handlers);
  } catch (e) {
    return { ok: false, id, reason: `/: cannot be checked (${errorMessage(e)})` };
  }
}

const MAX_DEPTH = 32;

/** The path of the first value nested deeper than `max`, without recursion; undefined when none is. */
export function deeperThan(doc: unknown, max: number): string | undefined {
  const stack: Array<[unknown, string, number]> = [[doc, '', 0]];
  while (stack.length) {
    const [v, path, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return path || '/';
    for (const [k, child] of Object.entries(v)) stack.push([child, `${path}/${k}`, depth + 1]);
  }
  return undefined;
}

function checkJob(doc: object, id: string | undefined, topicId: string | undefined, handlers: HandlerMap): ParsedJob {
  const parsed = parseWithSchema(JobDocSchema, doc);
  if (!parsed.ok) return { ok: false, id, reason: firstPerPath(parsed.errors).join('; ') };
  const job = parsed.value;
  if (topicId !== undefined && job.id !== topicId) {
    return { ok: false, id, reason: `/id: '${job.id}' differs from the id in the topic ('${topicId}')` };
  }
  const spec = job.type === 'cancel' ? { params: CancelParamsSchema } : handlers[job.type];
  if (!spec) {
    const known = ['cancel', ...Object.keys(handlers)].sort().join(', ');
    return { ok: false, id, reason: `/type: unknown job type '${job.type}' (this device runs: ${known})` };
  }
  const params = parseWithSchema(spec.params, job.params);
  if (!params.ok) return { ok: false, id, reason: underParams(firstPerPath(params.errors)).join('; ') };
  const issues = 'validate' in spec && spec.validate ? spec.validate(params.value) : [];
  if (issues.length) return { ok: false, id, reason: issues.join('; ') };
  return { ok: true, job: { ...job, params: params.value } };
}

/** Re-roots `path: message` errors of a params schema under /params. */
export function underParams(errors: string[]): string[] {
  return errors.map((e) => (e.startsWith('/: ') ? `/params${e.slice(1)}` : `/params${e}`));
}

/** TypeBox reports a missing field twice (required, then wrong type); the first says it best. */
function firstPerPath(errors: string[]): string[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const path = e.slice(0, e.indexOf(': '));
    if (seen.has(path)) return false;
    seen.add(path);
    return true;
  });
}
