// Mosquitto SIGKILLed and restarted again and again while the agent (a real process) runs jobs: every job gets
// its result and its final status. The controller here behaves as a real one should: a job that a dying broker
// acknowledged but never stored is sent again with the same id (the agent de-duplicates).
import t from 'tap';
import { join } from 'node:path';
import { agentEnv, controller, mosquitto, skip, sleep, startAgent, TERMINAL } from './harness.js';

const BASE = 'edgetune/it/bf';

t.test('broker killed and restarted repeatedly mid-job: no result lost', { skip }, async (t) => {
  const dir = t.testdir();
  const mq = await mosquitto(t, join(dir, 'mq'));
  const agent = startAgent(t, agentEnv(mq.url, join(dir, 'state'), 'bf'));
  const ctl = await controller(t, mq.url, [`${BASE}/jobs/+/+`, `${BASE}/status`]);
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online', 60_000);

  const jobs = new Map<string, object>();
  const send = (id: string, doc: object) => {
    jobs.set(id, doc);
    return ctl.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify(doc), { qos: 1 }).catch(() => {});
  };
  // Heavy jobs take seconds each (profiling runs in a work process), so the broker dies in the middle of them.
  for (let i = 0; i < 4; i++) await send(`h${i}`, { v: 1, id: `h${i}`, type: 'profile', params: {} });
  let light = 0;
  const lightBatch = async (n: number) => {
    for (let i = 0; i < n; i++, light++) await send(`l${light}`, { v: 1, id: `l${light}`, type: 'config', params: {} });
  };
  await lightBatch(20);

  const ended = (id: string) => ctl.msgs.some((m) => m.topic === `${BASE}/jobs/${id}/status` && TERMINAL.includes(m.doc.state));
  const allEnded = () => [...jobs.keys()].every(ended);
  const started = Date.now();
  let round = 0;
  // At least 8 outages, and on until the heavy jobs are done (they are what the outages should hit).
  const heavyDone = () => [0, 1, 2, 3].every((i) => ended(`h${i}`));
  while ((round < 8 || !heavyDone()) && Date.now() - started < 90_000) {
    await sleep(600 + Math.random() * 1400);
    await mq.kill();
    await sleep(150 + Math.random() * 600);
    await mq.start();
    round++;
    // more work arrives around each outage (the controller's client queues it while the broker is gone)
    if (round <= 6) void lightBatch(5);
  }
  await sleep(500);
  // A job the broker lost (acknowledged to the controller, killed before it was saved) is sent again, same id.
  let resent = 0;
  const deadline = Date.now() + 60_000;
  while (!allEnded() && Date.now() < deadline) {
    await sleep(3000);
    for (const [id, doc] of jobs) {
      if (!ctl.msgs.some((m) => m.topic === `${BASE}/jobs/${id}/status`)) {
        resent++;
        await send(id, doc);
      }
    }
  }
  const missing = [...jobs.keys()].filter((id) => !ended(id));
  t.same(missing, [], 'every job ended');
  const noResult = [...jobs.keys()].filter((id) => !ctl.msgs.some((m) => m.topic === `${BASE}/jobs/${id}/result`));
  t.same(noResult, [], 'every job has its result');
  const failed = [...jobs.keys()].filter((id) => !ctl.msgs.some((m) => m.topic === `${BASE}/jobs/${id}/status` && m.doc.state === 'SUCCEEDED'));
  t.same(failed, [], 'every job SUCCEEDED');
  for (let i = 0; i < 4; i++) {
    const r = ctl.msgs.find((m) => m.topic === `${BASE}/jobs/h${i}/result`);
    t.match(r?.doc, { v: 1, arch: process.arch, cpu: { cores: Number } }, `h${i}: a real profile`);
  }
  const keys = ctl.msgs.filter((m) => m.topic.endsWith('/status') && m.doc.seq).map((m) => `${m.doc.id}#${m.doc.seq}`);
  const duplicates = keys.length - new Set(keys).size;
  const runs = agent.logs.filter((l) => l.msg === 'job started').length;
  t.equal(agent.logs.filter((l) => l.msg === 'job started' && l.attempt === 1).length, jobs.size, 'each job started once');
  const reconnects = agent.logs.filter((l) => l.msg === 'connected to MQTT broker').length - 1;
  t.ok(mq.kills >= 6, `broker killed ${mq.kills} times`);
  t.comment(`FAULTS broker-faults: broker SIGKILLs=${mq.kills} agent reconnects=${reconnects} jobs=${jobs.size} (heavy 4, light ${light}) results=${jobs.size - noResult.length} lost=${noResult.length} duplicate-status-deliveries=${duplicates} job-resends-by-controller=${resent} runs=${runs}`);
  await agent.kill('SIGTERM');
});
