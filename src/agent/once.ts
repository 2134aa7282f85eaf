// `edgetune agent --once`: start the agent (with its embedded broker when none is configured), send the
// configured default job through MQTT exactly as a controller would, wait for its answer, stop cleanly.
import { randomBytes } from 'node:crypto';
import { CanceledError, EdgetuneError, type ErrorCode } from '../errors.js';
import { Agent, type AgentContext } from './agent.js';
import type { JobDoc, JobStatus } from './jobs.js';

export interface OnceOutcome {
  job: JobDoc;
  status: JobStatus;
  result: unknown;
  brokerUrl: string;
  base: string;
}

const FAILURE_CODE: Record<string, ErrorCode> = { REJECTED: 'JOB_INVALID', CANCELED: 'CANCELED', TIMED_OUT: 'TIMEOUT', FAILED: 'JOB_FAILED' };

/** Resolves with the job's result when it SUCCEEDED; throws an EdgetuneError naming the state otherwise. */
export async function runOnce(ctx: AgentContext, opts: { signal?: AbortSignal; connectTimeoutMs?: number } = {}): Promise<OnceOutcome> {
  const agent = new Agent(ctx);
  try {
    await agent.start();
    await connected(agent, opts.connectTimeoutMs ?? 30_000, opts.signal);
    const d = ctx.config.defaultJob;
    const job: JobDoc = {
      v: 1,
      id: `once-${agent.session}-${randomBytes(3).toString('hex')}`,
      type: d.type,
      params: d.params,
      ...(d.timeoutS !== undefined ? { timeoutS: d.timeoutS } : {}),
    };
    ctx.log.info(`submitting the default ${job.type} job`, { id: job.id, topic: `${agent.base}/jobs/${job.id}` });
    const { status, result } = await agent.submitOwnJob(job, opts.signal);
    if (status.state !== 'SUCCEEDED') {
      const why = status.error ? `${status.error.code}: ${status.error.message}` : 'no reason given';
      throw new EdgetuneError(FAILURE_CODE[status.state] ?? 'JOB_FAILED', `default ${job.type} job ${job.id} ended ${status.state} (${why})`);
    }
    return { job, status, result, brokerUrl: agent.brokerUrl!, base: agent.base };
  } finally {
    await agent.stop(opts.signal?.aborted ? 'interrupted' : 'once: done');
  }
}

async function connected(agent: Agent, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    await agent.waitConnected(signal ? AbortSignal.any([signal, timeout]) : timeout);
  } catch (e) {
    if (signal?.aborted) throw new CanceledError('connecting to the MQTT broker');
    if (!timeout.aborted) throw e;
    throw new EdgetuneError(
      'CONFIG_INVALID',
      `could not connect to the MQTT broker ${agent.brokerUrl} within ${timeoutMs / 1000} s; check broker.url (EDGETUNE_BROKER_URL) and that the broker is running`,
    );
  }
}
