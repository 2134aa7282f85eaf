import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { envName, envOverrides, envVariables, loadConfig, topicSafe } from '../../src/agent/config.js';
import { ConfigSchema } from '../../src/schema/config.js';
import { schemaErrors } from '../../src/schema/validate.js';
import { ConfigError } from '../../src/errors.js';
import { packageRoot } from '../../src/util/paths.js';

t.test('config/default.json is valid and agrees with the schema defaults', async (t) => {
  const file = JSON.parse(readFileSync(join(packageRoot(), 'config', 'default.json'), 'utf8'));
  const full = Value.Default(ConfigSchema, structuredClone(file));
  t.same(schemaErrors(ConfigSchema, full), []);
  t.same(full, Value.Default(ConfigSchema, {}), 'the bundled file says what the schema already defaults to');
});

t.test('defaults: embedded broker, stateDir under the package root, device id from the hostname', async (t) => {
  const c = await loadConfig({ env: {}, cwd: t.testdir() });
  t.equal(c.broker.url, undefined, 'no url → embedded broker');
  t.equal(c.broker.host, '127.0.0.1');
  t.equal(c.broker.port, 1883);
  t.equal(c.stateDir, join(packageRoot(), '.edgetune-state'));
  t.match(c.deviceId, /^[A-Za-z0-9._-]+$/);
  t.match(c.defaultJob, { type: 'tune', params: { model: 'examples/fashion-mnist/model.onnx', percentile: 90 } });
  t.ok((c.defaultJob.params.budgetMs as number) > 0);
});

t.test('user file merges over the defaults; its relative paths resolve against cwd', async (t) => {
  const dir = t.testdir({ 'agent.json': JSON.stringify({ fleet: 'lab', stateDir: 'state', broker: { port: 0 }, defaultJob: { params: { budgetMs: 2 } } }) });
  const c = await loadConfig({ file: 'agent.json', env: {}, cwd: dir });
  t.equal(c.fleet, 'lab');
  t.equal(c.broker.port, 0);
  t.equal(c.broker.keepaliveS, 30, 'untouched siblings keep their defaults');
  t.equal(c.stateDir, join(dir, 'state'));
  t.same(c.defaultJob.params, { model: 'examples/fashion-mnist/model.onnx', budgetMs: 2, percentile: 90 }, 'params merge key by key');
});

t.test('a different default job type brings its own params', async (t) => {
  const dir = t.testdir({ 'p.json': JSON.stringify({ defaultJob: { type: 'profile' } }) });
  const c = await loadConfig({ file: 'p.json', env: {}, cwd: dir });
  t.same(c.defaultJob, { type: 'profile', params: {} });
});

t.test('environment overrides are derived from the schema and converted by type', async (t) => {
  const dir = t.testdir();
  const c = await loadConfig({
    cwd: dir,
    env: {
      EDGETUNE_BROKER_URL: 'mqtt://broker.lan:1883',
      EDGETUNE_FLEET: 'greenhouse',
      EDGETUNE_DEVICE_ID: 'pi-07',
      EDGETUNE_BROKER_KEEPALIVE_S: '45',
      EDGETUNE_BROKER_PROTOCOL_VERSION: '5',
      EDGETUNE_GROUPS: 'pi4, north',
      EDGETUNE_STATE_DIR: 'st',
      EDGETUNE_DEFAULT_JOB_PARAMS: '{"budgetMs": 1.5}',
      EDGETUNE_LIMITS_MAX_PAYLOAD_BYTES: '8192',
      UNRELATED: 'x',
    },
  });
  t.match(c, {
    broker: { url: 'mqtt://broker.lan:1883', keepaliveS: 45, protocolVersion: 5 },
    fleet: 'greenhouse',
    deviceId: 'pi-07',
    groups: ['pi4', 'north'],
    stateDir: join(dir, 'st'),
    limits: { maxPayloadBytes: 8192 },
  });
  t.equal(c.defaultJob.params.budgetMs, 1.5);
  t.equal(c.defaultJob.params.model, 'examples/fashion-mnist/model.onnx');
  const names = envVariables().map((v) => v.name);
  t.ok(names.includes('EDGETUNE_BROKER_RECONNECT_MIN_MS') && names.includes('EDGETUNE_BROKER_PASSWORD'));
  t.notOk(names.includes('EDGETUNE_V'), 'the version is not settable');
  t.equal(envName(['limits', 'maxQueuedJobs']), 'EDGETUNE_LIMITS_MAX_QUEUED_JOBS');
});

t.test('command-line overrides beat the environment', async (t) => {
  const c = await loadConfig({ env: { EDGETUNE_BROKER_URL: 'mqtt://a:1' }, overrides: { broker: { url: 'mqtt://b:2' } }, cwd: t.testdir() });
  t.equal(c.broker.url, 'mqtt://b:2');
});

t.test('invalid values: every problem as `path: message`', async (t) => {
  const dir = t.testdir({
    'bad.json': JSON.stringify({ fleet: 'has/slash', broker: { port: 70000, bogus: 1, reconnect: { minMs: 'soon' } }, limits: { maxPayloadBytes: 10 } }),
  });
  const e = await loadConfig({ file: 'bad.json', env: {}, cwd: dir }).catch((x) => x);
  t.type(e, ConfigError);
  t.equal(e.code, 'CONFIG_INVALID');
  t.match(e.message, /bad\.json/, 'names the file');
  const issues: string[] = e.issues;
  t.ok(issues.some((i) => /^\/fleet: Expected string to match/.test(i)), issues.join('\n'));
  t.ok(issues.some((i) => /^\/broker\/port: Expected integer to be less or equal to 65535/.test(i)));
  t.ok(issues.some((i) => /^\/broker\/bogus: Unexpected property/.test(i)));
  t.ok(issues.some((i) => /^\/broker\/reconnect\/minMs: Expected integer/.test(i)));
  t.ok(issues.some((i) => /^\/limits\/maxPayloadBytes: .*1024/.test(i)));
  t.ok(issues.every((i) => /^\/\S*: /.test(i)), 'all in path: message form');
});

t.test('cross-field and environment errors', async (t) => {
  const e1 = await loadConfig({ env: { EDGETUNE_BROKER_RECONNECT_MIN_MS: '5000', EDGETUNE_BROKER_RECONNECT_MAX_MS: '100' }, cwd: t.testdir() }).catch((x) => x);
  t.match(e1.issues, ['/broker/reconnect/maxMs: must be >= minMs (5000)']);
  const e2 = await loadConfig({ env: { EDGETUNE_BROKER_PORT: 'eighteen' }, cwd: t.testdir() }).catch((x) => x);
  t.type(e2, ConfigError);
  t.match(e2.issues, [/^EDGETUNE_BROKER_PORT \(\/broker\/port\): expected a number, got 'eighteen'/]);
  const e3 = await loadConfig({ env: { EDGETUNE_BROKER_URL: 'http://x' }, cwd: t.testdir() }).catch((x) => x);
  t.match(e3.issues, [/^\/broker\/url: Expected string to match/]);
  t.same(envOverrides({ EDGETUNE_BROKER_PORT: '' }).value, {}, 'empty means unset');
});

t.test('missing and broken files are named', async (t) => {
  const dir = t.testdir({ 'broken.json': '{ "fleet": ', 'array.json': '[1]' });
  await t.rejects(loadConfig({ file: 'nope.json', env: {}, cwd: dir }), { code: 'CONFIG_INVALID', message: /nope\.json does not exist/ });
  await t.rejects(loadConfig({ file: 'broken.json', env: {}, cwd: dir }), { message: /broken\.json is not valid JSON/ });
  await t.rejects(loadConfig({ file: 'array.json', env: {}, cwd: dir }), { message: /array\.json: \/: expected a JSON object/ });
});

t.test('topicSafe makes a hostname one topic level', async (t) => {
  t.equal(topicSafe('pi 4/#kitchen+'), 'pi-4--kitchen-');
  t.equal(topicSafe(''), 'device');
});
