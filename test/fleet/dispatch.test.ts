import t from 'tap';
import { countOutcomes, dispatch } from '../../src/fleet/dispatch.js';
import { formatOutcomes, progressLine } from '../../src/fleet/format.js';
import { startSessionWithSims } from './helpers.js';

t.test('bench on a simulated fleet: every device answers, progress is followed, results land in the store', async (t) => {
  const { session, store, sim } = await startSessionWithSims(t, { count: 6 });
  t.equal(session.view.size, 6, 'the retained state of every device arrived before start() returned');
  t.ok(session.view.records().every((r) => r.online === true && r.target), 'online, with a target matched from the profile');
  const lines: string[] = [];
  const entries = await dispatch(session, {
    jobId: 'b1', devices: session.view.records().map((r) => r.device), spec: { type: 'bench', params: { model: 'm.onnx' } },
    tags: { runId: 'b1' }, onChange: (tj, what) => lines.push(`${what} ${progressLine(tj, what)}`),
  });
  t.same(countOutcomes(entries), { total: 6, succeeded: 6, failed: 0, skipped: 0, byVerdict: { SUCCEEDED: 6 } });
  for (const d of sim.devices) t.equal(d.received.bench, 1, `${d.id} got exactly one bench job`);
  t.ok(lines.some((l) => /^status .* b1 {2}QUEUED/.test(l)), 'QUEUED seen');
  t.ok(lines.some((l) => /^done .* b1 {2}SUCCEEDED {2}sim:fp32 p90 [\d.]+ ms acc 0\.9\d+ \[simulated\]/.test(l)), 'done line with the simulated result');
  await store!.flush();
  const rows = store!.results({ runId: 'b1' });
  t.equal(rows.length, 6, 'one stored result per device');
  t.ok(rows.every((r) => r.type === 'bench' && r.simulated && r.latencyP90! > 0 && r.target), 'stored with figures, type and target');
  t.equal(store!.jobs('b1').filter((j) => j.state === 'SUCCEEDED').length, 6, 'each device outcome recorded');
  t.match(formatOutcomes(entries), /6 devices: 6 SUCCEEDED/);
});

t.test('offline and unknown devices are skipped; a device that never answers ends NO_RESPONSE; a rejected job is a failure', async (t) => {
  const { session, sim } = await startSessionWithSims(t, { count: 3, graceS: 0.5 });
  const [a, b, c] = sim.devices;
  await b.stop();
  await new Promise((r) => setTimeout(r, 300)); // the retained offline reaches the controller
  t.equal(session.view.get(b.id)?.online, false, 'the clean stop published offline');
  // A device that is online but silent: the broker accepts the job and nothing comes back.
  await c.crash();
  await new Promise((r) => setTimeout(r, 200));
  const entries = await dispatch(session, {
    jobId: 'x1', devices: [a.id, b.id, 'nobody-here'], spec: { type: 'bench', params: { model: 'm.onnx', bogus: 1 }, timeoutS: 1 },
  });
  const by = Object.fromEntries(entries.map((e) => [e.device, e]));
  t.equal(by[a.id].verdict, 'REJECTED', 'bad params are REJECTED by the device');
  t.match(by[a.id].error, { message: /bogus/ });
  t.equal(by[b.id].verdict, 'SKIPPED');
  t.match(by[b.id].error?.message, /offline; not sent/);
  t.match(by['nobody-here'].error?.message, /no retained status/);
  t.same(countOutcomes(entries).failed, 1);

  const silent = await dispatch(session, { jobId: 'x2', devices: [c.id], spec: { type: 'bench', params: { model: 'm' }, timeoutS: 0.5 }, includeOffline: true });
  t.equal(silent[0].verdict, 'NO_RESPONSE', 'no answer within timeout + grace');
  t.match(silent[0].error?.message, /never acknowledged/);
});

t.test('Ctrl-C while waiting: devices still working get a cancel job', async (t) => {
  const { session, sim } = await startSessionWithSims(t, { count: 2, behaviour: { costMs: 5000 } });
  const ac = new AbortController();
  const p = dispatch(session, { jobId: 'c1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' } }, signal: ac.signal,
    onChange: (tj) => { if (tj.state === 'IN_PROGRESS') ac.abort(); } });
  await t.rejects(p, { code: 'CANCELED' });
  // The device publishes CANCELED for the job once the cancel job reaches it.
  const tracked = session.tracker.get(sim.devices[0].id, 'c1')!;
  const start = Date.now();
  while (tracked.state !== 'CANCELED' && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 20));
  t.equal(tracked.state, 'CANCELED');
});

