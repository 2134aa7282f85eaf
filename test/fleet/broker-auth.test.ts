import t from 'tap';
import { join } from 'node:path';
import { loadConfig } from '../../src/agent/config.js';
import { brokerOverrides } from '../../src/fleet/api.js';
import { brokerCredentials, fatalConnectError } from '../../src/fleet/broker-auth.js';

t.test('flags become the agent\'s config fields; files are read by the agent\'s loaders', async (t) => {
  const dir = t.testdir({ 'ca.pem': 'CA PEM', 'c.pem': 'CERT PEM', 'k.pem': 'KEY PEM', 'pw': 's3cret\nignored\n' });
  const overrides = brokerOverrides({ broker: 'mqtts://b:8883', username: 'controller', passwordFile: join(dir, 'pw'), ca: join(dir, 'ca.pem'), cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') });
  t.same(overrides, { broker: { url: 'mqtts://b:8883', username: 'controller', passwordFile: join(dir, 'pw'), tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') } } });
  t.same(brokerOverrides({}), {});
  const config = await loadConfig({ env: {}, overrides });
  const c = await brokerCredentials(config.broker);
  t.equal(c.username, 'controller');
  t.equal(c.password, 's3cret', 'the first line of the password file');
  t.equal(c.tls?.ca?.toString(), 'CA PEM');
  t.equal(c.tls?.cert?.toString(), 'CERT PEM');
  t.equal(c.tls?.key?.toString(), 'KEY PEM');
  t.equal(c.tls?.rejectUnauthorized, true);

  const plain = await brokerCredentials((await loadConfig({ env: {} })).broker);
  t.same(plain, {}, 'nothing configured: no credentials, no TLS options');

  const env = await loadConfig({ env: { EDGETUNE_BROKER_TLS_CA: join(dir, 'ca.pem'), EDGETUNE_BROKER_PASSWORD: 'from-env' } });
  const fromEnv = await brokerCredentials(env.broker);
  t.equal(fromEnv.tls?.ca?.toString(), 'CA PEM', 'the agent\'s EDGETUNE_BROKER_TLS_CA works for the controller too');
  t.equal(fromEnv.password, 'from-env');

  await t.rejects(brokerCredentials((await loadConfig({ env: {}, overrides: brokerOverrides({ ca: join(dir, 'nope.pem') }) })).broker), /\/broker\/tls\/ca: cannot read .*nope\.pem/);
  await t.rejects(brokerCredentials((await loadConfig({ env: {}, overrides: brokerOverrides({ cert: join(dir, 'c.pem') }) })).broker), /mutual TLS needs both cert and key/);
  await t.rejects(brokerCredentials((await loadConfig({ env: {}, overrides: brokerOverrides({ passwordFile: join(dir, 'missing') }) })).broker), /\/broker\/passwordFile: cannot read/);
});

t.test('connect failures that a retry cannot fix name the flag to change; others are retried', async (t) => {
  const err = (code: unknown, message = 'x') => Object.assign(new Error(message), { code });
  t.match(fatalConnectError(err('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), 'mqtts://h:1')?.message, /^the broker mqtts:\/\/h:1 presented a certificate this controller does not trust \(SELF_SIGNED_CERT_IN_CHAIN: self-signed.*\); give the CA .* --ca/);
  t.match(fatalConnectError(err('ERR_TLS_CERT_ALTNAME_INVALID'), 'u')?.message, /does not trust/);
  t.match(fatalConnectError(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'u')?.message, /refused the TLS handshake .*--cert and --key/);
  t.match(fatalConnectError(err(5, 'Connection refused: Not authorized'), 'u')?.message, /refused the login \(reason code 5: Connection refused: Not authorized\); check --username and --password-file/);
  t.match(fatalConnectError(err(134), 'u')?.code, 'CONFIG_INVALID');
  t.equal(fatalConnectError(err('ECONNREFUSED'), 'u'), undefined, 'a broker that is down is retried');
  t.equal(fatalConnectError(err('ECONNRESET'), 'u'), undefined);
  t.equal(fatalConnectError(err(3), 'u'), undefined, 'server unavailable is retried');
  t.equal(fatalConnectError('not an error', 'u'), undefined);
});
