import t from 'tap';
import { createServer } from 'node:net';
import { memoryLogger } from '../../src/agent/log.js';
import { assertPublishTopic, backoffDelay, encodeDoc, refusal, Transport } from '../../src/agent/transport.js';
import { topicMatches } from '../../src/agent/topics.js';
import { ManualClock, startBroker, until } from './helpers.js';

t.test('backoff grows exponentially, is capped, and jitters within [cap/2, cap]', async (t) => {
  const r = { minMs: 1000, maxMs: 60000 };
  t.same([0, 1, 2, 3].map((a) => backoffDelay(a, r, () => 1)), [1000, 2000, 4000, 8000]);
  t.same([0, 1, 2, 3].map((a) => backoffDelay(a, r, () => 0)), [500, 1000, 2000, 4000]);
  t.equal(backoffDelay(10, r, () => 1), 60000, 'capped at maxMs');
  t.equal(backoffDelay(1000, r, () => 0.5), 45000, 'huge attempt counts do not overflow');
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(3, r, Math.random)));
  t.ok(spread.size > 10, 'real randomness spreads a fleet out');
});

t.test('publish guards: concrete topics and versioned JSON only', async (t) => {
  for (const bad of ['a/+/b', 'a/#', '$SYS/x', 'a//b', '', 'a/']) t.throws(() => assertPublishTopic(bad), TypeError, bad);
  t.doesNotThrow(() => assertPublishTopic('edgetune/f/d/status'));
  t.throws(() => encodeDoc({ state: 'online' }), /numeric "v"/);
  t.throws(() => encodeDoc([1]), /numeric "v"/);
  t.same(JSON.parse(encodeDoc({ v: 1, n: 2n }).toString()), { v: 1, n: 2 });
});

t.test('a refused login is explained with the settings to check; other errors are not refusals', async (t) => {
  const refused = (message: string, code: number) => Object.assign(new Error(message), { code });
  t.match(refusal(refused('Connection refused: Bad User Name or Password', 134)), /Bad User Name or Password \(reason code 134\); check broker\.username and broker\.password \/ broker\.passwordFile/);
  t.match(refusal(refused('Connection refused: Bad username or password', 4)), /reason code 4\); check broker\.username/);
  t.match(refusal(refused('Connection refused: Not authorized', 135)), /may not connect: .*broker\.tls\.cert/);
  t.match(refusal(refused('Connection refused: Server busy', 137)), /see the broker's log/);
  t.equal(refusal(new Error('connect ECONNREFUSED 127.0.0.1:1883')), undefined);
  t.equal(refusal(refused('Publish error: Not authorized', 135)), undefined);
});

t.test('topic filters match like MQTT', async (t) => {
  t.ok(topicMatches('a/+/c', 'a/b/c'));
  t.notOk(topicMatches('a/+/c', 'a/b/c/d'));
  t.notOk(topicMatches('a/jobs/+', 'a/jobs/1/status'));
  t.ok(topicMatches('a/#', 'a'));
  t.ok(topicMatches('a/#', 'a/b/c'));
  t.notOk(topicMatches('a/b', 'a'));
});

t.test('reconnects on the injected clock with growing delays, then restores subscriptions', async (t) => {
  // A port with nothing behind it, later taken by a real broker.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const clock = new ManualClock();
  const log = memoryLogger();
  const tr = new Transport({
    url: `mqtt://127.0.0.1:${port}`, clientId: 'tr-test', keepaliveS: 30, protocolVersion: 4,
    reconnect: { minMs: 1000, maxMs: 4000 }, log, clock, random: () => 1,
    will: () => ({ topic: 'x/status', doc: { v: 1, state: 'offline' } }),
  });
  t.teardown(() => tr.stop());
  let connects = 0;
  tr.events.on('connect', () => { connects++; });
  await tr.subscribe('x/in', 1);
  tr.start();
  await until(() => clock.pending().length === 1, 'first retry scheduled');
  t.same(clock.pending(), [1000]);
  clock.advance(1000);
  await until(() => clock.pending().length === 1, 'second retry scheduled');
  t.same(clock.pending(), [2000], 'doubles');
  clock.advance(2000);
  await until(() => clock.pending().length === 1, 'third retry');
  clock.advance(4000);
  await until(() => clock.pending().length === 1, 'fourth retry');
  t.same(clock.pending(), [4000], 'capped at maxMs');

  const { url } = await startBroker(t, port);
  clock.advance(4000);
  await tr.waitConnected();
  await until(() => connects === 1, 'connect event');
  t.equal(clock.pending().length, 0, 'no retry pending once connected');

  // The subscription made before connecting is live: a message reaches us.
  const { connectAsync } = await import('mqtt');
  const other = await connectAsync(url, { reconnectPeriod: 0 });
  t.teardown(() => other.endAsync(true));
  const got = new Promise<string>((r) => tr.events.on('message', (topic, p) => r(`${topic} ${p}`)));
  await other.publishAsync('x/in', 'ping', { qos: 1 });
  t.equal(await got, 'x/in ping');
  await t.rejects(tr.publish('x/+', { v: 1 }, { qos: 1 }), TypeError, 'never to a wildcard');
});
