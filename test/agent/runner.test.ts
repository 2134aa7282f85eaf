import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { memoryLogger } from '../../src/agent/log.js';
import type { HandlerMap, JobDoc, JobStatus } from '../../src/agent/jobs.js';
import { JobStore } from '../../src/agent/jobstore.js';
import { JobRunner, RESTART_SEQ_STEP, type JobSink } from '../../src/agent/runner.js';
import { SeenJobs } from '../../src/agent/state.js';
import type { VersionedDoc } from '../../src/agent/transport.js';
import type { OpContext } from '../../src/types.js';
import { ManualClock, until } from './helpers.js';

/** A sink that keeps what the runner would publish, and checks the commit protocol of terminal statuses. */
function recorder(store?: () => JobStore) {
  const statuses: Array<JobStatus & { qos: 0 | 1 }> = [];
  const results: Array<{ job: JobDoc; doc: VersionedDoc }> = [];
  const commitOrder: string[] = [];
  const sink: JobSink = {
    status: (s, qos) => { statuses.push({ ...s, qos }); },
    terminal: async (job, s, result, _reply, commit) => {
      // The job is still on record when its end is persisted, and off it once committed.
      commitOrder.push(`${job.id}:${store?.().known(job.id) ?? '?'}`);
      await commit();
      commitOrder.push(`${job.id}:committed`);
      if (result) results.push({ job, doc: result });
      statuses.push({ ...s, qos: 1 });
    },
  };
  return { statuses, results, commitOrder, sink };
}

/** A handler the test drives by hand: it reports progress when told and finishes when told. */
function controllable() {
  let ctx: OpContext | undefined;
  let finish: ((v: unknown) => void) | undefined;
  let runs = 0;
  const handlers: HandlerMap = {
    manual: {
      params: Type.Object({}),
      run: (_p, c) => new Promise((resolve) => { runs++; ctx = c; finish = resolve; }),
    },
    deaf: { params: Type.Object({}), run: () => new Promise(() => {}) },
    once: { params: Type.Object({}), resumable: false, run: () => new Promise(() => {}) },
    quick: { params: Type.Object({}), light: true, run: async () => ({ v: 1, light: true }) },
  };
  return {
    handlers,
    progress: (pct: number) => ctx!.onProgress!({ step: 'work', pct, etaS: 12.4 }),
    finish: (v: unknown) => finish!(v),
    started: () => ctx !== undefined,
    runs: () => runs,
  };
}

async function setup(t: any, handlers: HandlerMap, maxQueuedJobs = 8, dir: string = t.testdir()) {
  const clock = new ManualClock();
  const log = memoryLogger();
  const store = new JobStore(dir, 100, log);
  const records = await store.load();
  const rec = recorder(() => store);
  const runner = new JobRunner({ handlers, sink: rec.sink, store, log, clock, limits: { maxPayloadBytes: 4096, maxQueuedJobs }, settings: { progressIntervalMs: 1000 }, abortGraceMs: 5000, maxAttempts: 2 });
  return { clock, log, runner, rec, store, records, dir };
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

t.test('queue limit → REJECTED; stop leaves running and queued jobs on disk for the next start', async (t) => {
  const h = controllable();
  const { runner, rec, dir } = await setup(t, h.handlers, 2);
  await runner.receive(job('r'), 'r');
  await until(h.started, 'r running');
  t.equal(await runner.receive(job('q1'), 'q1'), 'queued');
  t.equal(await runner.receive(job('q2'), 'q2'), 'queued');
  t.equal(await runner.receive(job('q3'), 'q3'), 'rejected');
  t.match(rec.statuses.find((s) => s.id === 'q3'), { state: 'REJECTED', error: { message: /queue full: 2 jobs waiting/ } });
  t.same(runner.snapshot(), { running: { id: 'r', type: 'manual' }, light: [], queued: ['q1', 'q2'] });
  const stopping = runner.stop('shutting down');
  h.finish({ v: 1 }); // the manual handler ignores abort but finishes promptly
  await stopping;
  t.notOk(rec.statuses.some((s) => ['r', 'q1', 'q2'].includes(s.id) && ['CANCELED', 'SUCCEEDED', 'FAILED'].includes(s.state)), 'nothing terminal for interrupted or queued jobs');
  t.equal(rec.results.length, 0, 'an interrupted job publishes no result even if its handler returned');
  const onDisk = JSON.parse(readFileSync(join(dir, 'jobs', 'r.json'), 'utf8'));
  t.match(onDisk, { state: 'IN_PROGRESS', attempts: 0 }, 'a stop does not spend an attempt');

  // The next start: r runs again first, then q1 and q2, all to the end.
  const h2 = controllable();
  const b = await setup(t, h2.handlers, 2, dir);
  t.same(b.records.map((r) => r.job.id), ['r', 'q1', 'q2'], 'queue order kept');
  await b.runner.restore(b.records);
  for (const [i, id] of ['r', 'q1', 'q2'].entries()) {
    await until(() => h2.runs() === i + 1, `${id} running`);
    h2.finish({ v: 1, id });
    await until(() => b.rec.statuses.some((s) => s.id === id && s.state === 'SUCCEEDED'), `${id} done`);
  }
  const r = b.rec.statuses.filter((s) => s.id === 'r');
  t.ok(r.every((s) => s.seq > RESTART_SEQ_STEP), 'seq continues past anything published before the restart');
  t.notOk(existsSync(join(dir, 'jobs', 'q2.json')), 'ended jobs leave no record');
  t.equal(await b.runner.receive(job('r'), 'r'), 'duplicate', 'and their ids are remembered');
});

t.test('restart recovery: a job the agent died under runs again, then FAILED once attempts are used up', async (t) => {
  const h = controllable();
  const a = await setup(t, h.handlers);
  await a.runner.receive(job('crashy'), 'crashy');
  await a.runner.receive(job('fragile', 'once'), 'fragile');
  await until(h.started, 'running');
  // The process "dies": the runner is abandoned without stop(); only the disk remains.
  const b = await setup(t, controllable().handlers, 8, a.dir);
  t.match(b.records, [{ job: { id: 'crashy' }, state: 'IN_PROGRESS', attempts: 1 }, { job: { id: 'fragile' }, state: 'QUEUED' }]);
  await b.runner.restore(b.records);
  await until(() => b.rec.statuses.some((s) => s.id === 'crashy' && s.state === 'IN_PROGRESS'), 'crashy resumed');
  t.match(b.rec.statuses.find((s) => s.id === 'crashy'), { progress: { step: /resuming after an agent restart \(attempt 2\)/ } });
  // It dies again under attempt 2.
  const c = await setup(t, controllable().handlers, 8, a.dir);
  await c.runner.restore(c.records);
  await until(() => c.rec.statuses.some((s) => s.id === 'crashy' && s.state === 'FAILED'), 'crashy FAILED');
  t.match(c.rec.statuses.find((s) => s.id === 'crashy'), { error: { code: 'AGENT_RESTARTED', message: /attempt 2 of 2 \(jobs.maxAttempts\)/ } });
  // fragile (not resumable) started under c after crashy ended; kill again.
  await until(() => c.rec.statuses.some((s) => s.id === 'fragile' && s.state === 'IN_PROGRESS'), 'fragile running');
  const d = await setup(t, controllable().handlers, 8, a.dir);
  await d.runner.restore(d.records);
  await until(() => d.rec.statuses.some((s) => s.id === 'fragile' && s.state === 'FAILED'), 'fragile FAILED');
  t.match(d.rec.statuses.find((s) => s.id === 'fragile'), { error: { code: 'AGENT_RESTARTED', message: /not re-run: resend with a new id/ } });
  t.same(d.rec.commitOrder, ['crashy:true', 'crashy:committed', 'fragile:true', 'fragile:committed'].filter((x) => x.startsWith('fragile')), 'end persisted while on record, then committed');
});

t.test('a light job runs beside the heavy one; a rejected id is remembered across restarts', async (t) => {
  const h = controllable();
  const a = await setup(t, h.handlers);
  await a.runner.receive(job('heavy'), 'heavy');
  await until(h.started, 'heavy running');
  t.equal(await a.runner.receive(job('l1', 'quick'), 'l1'), 'queued');
  await until(() => a.rec.statuses.some((s) => s.id === 'l1' && s.state === 'SUCCEEDED'), 'light job done while heavy runs');
  t.equal(a.runner.snapshot().running?.id, 'heavy');
  t.equal(await a.runner.receive(Buffer.from('{"v":1,'), 'bad1'), 'rejected');
  const b = await setup(t, controllable().handlers, 8, a.dir);
  t.equal(await b.runner.receive(Buffer.from('{"v":1,'), 'bad1'), 'duplicate', 'redelivery of a bad message is not answered again');
  t.equal(await b.runner.receive(job('l1', 'quick'), 'l1'), 'duplicate');
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
