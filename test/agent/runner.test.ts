import t from 'tap';
import { Type } from '@sinclair/typebox';
import { memoryLogger } from '../../src/agent/log.js';
import type { HandlerMap, JobDoc, JobStatus } from '../../src/agent/jobs.js';
import { JobRunner } from '../../src/agent/runner.js';
import { SeenJobs } from '../../src/agent/state.js';
import type { VersionedDoc } from '../../src/agent/transport.js';
import type { OpContext } from '../../src/types.js';
import { ManualClock, until } from './helpers.js';

/** A sink that keeps what the runner would publish. */
function recorder() {
  const statuses: Array<JobStatus & { qos: 0 | 1 }> = [];
  const results: Array<{ job: JobDoc; doc: VersionedDoc }> = [];
  return {
    statuses,
    results,
    sink: {
      status: (s: JobStatus, qos: 0 | 1) => statuses.push({ ...s, qos }),
      result: (job: JobDoc, doc: VersionedDoc) => results.push({ job, doc }),
    },
  };
}

/** A handler the test drives by hand: it reports progress when told and finishes when told. */
function controllable() {
  let ctx: OpContext | undefined;
  let finish: ((v: unknown) => void) | undefined;
  const handlers: HandlerMap = {
    manual: {
      params: Type.Object({}),
      run: (_p, c) => new Promise((resolve) => { ctx = c; finish = resolve; }),
    },
    deaf: { params: Type.Object({}), run: () => new Promise(() => {}) },
  };
  return { handlers, progress: (pct: number) => ctx!.onProgress!({ step: 'work', pct, etaS: 12.4 }), finish: (v: unknown) => finish!(v), started: () => ctx !== undefined };
}

async function setup(t: any, handlers: HandlerMap, maxQueuedJobs = 8) {
  const clock = new ManualClock();
  const log = memoryLogger();
  const seen = new SeenJobs(t.testdir(), 100, log);
  await seen.load();
  const rec = recorder();
  const runner = new JobRunner({ handlers, sink: rec.sink, seen, log, clock, limits: { maxPayloadBytes: 4096, maxQueuedJobs }, progressIntervalMs: 1000, abortGraceMs: 5000 });
  return { clock, log, runner, rec, seen };
}

const job = (id: string, type = 'manual', extra: object = {}) => Buffer.from(JSON.stringify({ v: 1, id, type, params: {}, ...extra }));

t.test('progress is QoS 0 and throttled to one per interval on the injected clock', async (t) => {
  const h = controllable();
  const { clock, runner, rec } = await setup(t, h.handlers);
  t.equal(await runner.receive(job('a'), 'a'), 'queued');
  await until(h.started, 'handler started');
  h.progress(10);
  t.equal(rec.statuses.length, 2, 'no update before the interval has passed');
  clock.advance(1000);
  h.progress(20);
  h.progress(30);
  t.equal(rec.statuses.length, 3, 'one update per interval');
  t.match(rec.statuses[2], { state: 'IN_PROGRESS', qos: 0, seq: 3, progress: { step: 'work', pct: 20, etaS: 12 } });
  clock.advance(999);
  h.progress(40);
  t.equal(rec.statuses.length, 3);
  clock.advance(1);
  h.progress(50);
  t.equal(rec.statuses.length, 4);
  h.finish({ v: 1, ok: true });
  await until(() => rec.statuses.some((s) => s.state === 'SUCCEEDED'), 'done');
  t.same(rec.statuses.map((s) => [s.state, s.qos]), [['QUEUED', 1], ['IN_PROGRESS', 1], ['IN_PROGRESS', 0], ['IN_PROGRESS', 0], ['SUCCEEDED', 1]]);
  t.same(rec.results.map((r) => r.doc), [{ v: 1, ok: true }]);
  t.equal(rec.statuses.at(-1)!.ts, new Date(clock.now()).toISOString(), 'ts comes from the injected clock');
});

t.test('a bare return value is wrapped as a versioned document', async (t) => {
  const h = controllable();
  const { runner, rec } = await setup(t, h.handlers);
  await runner.receive(job('w'), 'w');
  await until(h.started, 'started');
  h.finish(42);
  await until(() => rec.results.length === 1, 'result');
  t.same(rec.results[0].doc, { v: 1, value: 42 });
});

t.test('timeout on the injected clock; a handler deaf to abort is abandoned after the grace period', async (t) => {
  const h = controllable();
  const { clock, runner, rec, log } = await setup(t, h.handlers);
  await runner.receive(job('d', 'deaf', { timeoutS: 30 }), 'd');
  await runner.receive(job('next'), 'next');
  await until(() => rec.statuses.some((s) => s.id === 'd' && s.state === 'IN_PROGRESS'), 'deaf running');
  clock.advance(29_999);
  t.notOk(rec.statuses.some((s) => s.state === 'TIMED_OUT'), 'not before timeoutS');
  clock.advance(1);
  await new Promise((r) => setImmediate(r));
  t.notOk(rec.statuses.some((s) => s.state === 'TIMED_OUT'), 'waits for the handler during the grace period');
  t.notOk(h.started(), 'the next job has not started: one job at a time');
  clock.advance(5000);
  await until(() => rec.statuses.some((s) => s.id === 'd' && s.state === 'TIMED_OUT'), 'TIMED_OUT');
  await until(h.started, 'next job started after the abandoned one');
  t.ok(log.lines.some((l) => l.level === 'warn' && /ignored its abort/.test(l.msg)));
});

t.test('queue limit → REJECTED; stop cancels queued jobs and refuses new ones', async (t) => {
  const h = controllable();
  const { runner, rec } = await setup(t, h.handlers, 2);
  await runner.receive(job('r'), 'r');
  await until(h.started, 'r running');
  t.equal(await runner.receive(job('q1'), 'q1'), 'queued');
  t.equal(await runner.receive(job('q2'), 'q2'), 'queued');
  t.equal(await runner.receive(job('q3'), 'q3'), 'rejected');
  t.match(rec.statuses.find((s) => s.id === 'q3'), { state: 'REJECTED', error: { message: /queue full: 2 jobs waiting/ } });
  t.same(runner.snapshot(), { running: { id: 'r', type: 'manual' }, queued: ['q1', 'q2'] });
  const stopping = runner.stop('shutting down');
  h.finish({ v: 1 }); // the manual handler ignores abort but finishes promptly
  await stopping;
  const final = (id: string) => rec.statuses.filter((s) => s.id === id).at(-1);
  t.match(final('q1'), { state: 'CANCELED', error: { message: /shutting down before the job ran/ } });
  t.match(final('r'), { state: 'CANCELED', error: { message: 'shutting down' } });
  t.equal(rec.results.length, 0, 'an aborted job publishes no result even if its handler returned');
  t.equal(await runner.receive(job('late'), 'late'), 'stopped');
});

t.test('seen ids are persisted atomically and capped', async (t) => {
  const dir = t.testdir();
  const log = memoryLogger();
  const a = new SeenJobs(dir, 16, log);
  await a.load();
  for (let i = 0; i < 20; i++) await a.add(`id${i}`);
  const b = new SeenJobs(dir, 16, log);
  await b.load();
  t.ok(b.has('id19') && b.has('id4'), 'recent ids kept');
  t.notOk(b.has('id3'), 'oldest ids dropped past the cap');
});
