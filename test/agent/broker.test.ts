import t from 'tap';
import { createServer } from 'node:net';
import { connectAsync } from 'mqtt';
import { EmbeddedBroker } from '../../src/agent/broker.js';
import { memoryLogger } from '../../src/agent/log.js';

function listenOn(port = 0): Promise<{ port: number; close: () => Promise<void> }> {
  const s = createServer();
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve({ port: (s.address() as { port: number }).port, close: () => new Promise((r) => s.close(() => r())) }));
  });
}

t.test('serves MQTT on a free port, and stop() releases the port', async (t) => {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0 });
  const port = await broker.start();
  t.ok(port > 0);
  t.equal(broker.url, `mqtt://127.0.0.1:${port}`);
  const c = await connectAsync(broker.url!, { reconnectPeriod: 0 });
  const got = new Promise<string>((r) => c.on('message', (_topic, p) => r(p.toString())));
  await c.subscribeAsync('a/b', { qos: 1 });
  await c.publishAsync('a/b', 'hello', { qos: 1 });
  t.equal(await got, 'hello', 'a message makes the round trip');
  await broker.stop();
  t.equal(broker.port, undefined);
  await c.endAsync(true);
  const again = await listenOn(port);
  t.equal(again.port, port, 'the port is free again');
  await again.close();
});

t.test('a busy port falls back to a free one and says so', async (t) => {
  const busy = await listenOn();
  t.teardown(busy.close);
  const log = memoryLogger();
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: busy.port, log });
  t.teardown(() => broker.stop());
  const port = await broker.start();
  t.not(port, busy.port);
  const warn = log.lines.find((l) => l.level === 'warn');
  t.match(warn, { msg: new RegExp(`port ${busy.port} on 127.0.0.1 is busy; embedded MQTT broker uses port ${port}`) });
  const c = await connectAsync(broker.url!, { reconnectPeriod: 0 });
  t.ok(c.connected);
  await c.endAsync();
});

t.test('an address that cannot be bound is an error, not a silent fallback', async (t) => {
  const broker = new EmbeddedBroker({ host: '203.0.113.7', port: 0 });
  await t.rejects(broker.start(), { code: 'EADDRNOTAVAIL' });
});
