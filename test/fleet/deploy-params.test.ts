import t from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyModelSignature } from '../../src/agent/deploy/signature.js';
import { deployParams } from '../../src/fleet/deploy-params.js';
import { prepareTransfer, transferParams } from '../../src/fleet/transfer.js';

t.test('deploy params: the sha256 from a local copy, a signature from the fleet key, checked against the agent\'s schema', async (t) => {
  const dir = t.testdir({ 'm.onnx': 'model bytes' });
  const file = join(dir, 'm.onnx');
  const sha = createHash('sha256').update('model bytes').digest('hex');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'fleet.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));

  const a = await deployParams({ model: 'inbox/m.onnx', file, signKey: join(dir, 'fleet.key'), budget: { latencyMs: 5, percentile: 90 } });
  t.match(a.params, { model: 'inbox/m.onnx', sha256: sha, budget: { latencyMs: 5, percentile: 90 } });
  t.ok(verifyModelSignature(sha, a.params.signature!, publicKey), 'the signature verifies with the fleet\'s public key');
  t.match(a.notes, [new RegExp(`sha256 ${sha} from .*m\\.onnx`)]);

  const b = await deployParams({ model: file });
  t.equal(b.params.sha256, sha, '--model names a file that exists here: it is hashed');
  const c = await deployParams({ url: 'https://models.example/m.onnx', sha256: sha.toUpperCase() });
  t.same(c.params, { url: 'https://models.example/m.onnx', sha256: sha }, 'a given sha256 is used as is (lowercased)');
  t.same(c.notes, []);

  await t.rejects(deployParams({ model: 'nowhere/m.onnx' }), { code: 'USAGE', message: /devices refuse a deploy without the model's sha256: give --sha256, or --file .*nowhere\/m\.onnx is not a file here/ });
  await t.rejects(deployParams({ model: 'a', url: 'https://x/y', sha256: sha }), { message: /exactly one of --model .*, --url .* or --transfer/ });
  await t.rejects(deployParams({ model: 'a', sha256: 'abc' }), { message: /would be refused by the devices:\n  \/params\/sha256: Expected string to match/ });
  await t.rejects(deployParams({ url: 'ftp://x/y', sha256: sha }), { message: /\/params\/url/ });
  writeFileSync(join(dir, 'rsa.key'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await t.rejects(deployParams({ model: 'a', sha256: sha, signKey: join(dir, 'rsa.key') }), { message: /--sign-key .*rsa\.key: a rsa key; model signatures are ed25519/ });
});

t.test('deploy params for a transfer over MQTT: chunks of the file, the sha256 of the whole', async (t) => {
  const body = Buffer.alloc(5000, 7);
  const dir = t.testdir({ 'm.onnx': body });
  const sha = createHash('sha256').update(body).digest('hex');
  const tx = await prepareTransfer(join(dir, 'm.onnx'), 2048);
  t.same(tx.chunks.map((c) => c.length), [2048, 2048, 904]);
  t.same(Buffer.concat(tx.chunks), body, 'the chunks put together are the file');
  t.equal(tx.sha256, sha);
  t.match(tx.id, /^[A-Za-z0-9._-]{1,64}$/, 'the id is one topic level');
  const { params } = await deployParams({ transfer: { ...transferParams(tx), sha256: tx.sha256 } });
  t.same(params, { transfer: { id: tx.id, chunks: 3, bytes: 5000 }, sha256: sha });
  await t.rejects(deployParams({ transfer: { ...transferParams(tx), sha256: sha }, sha256: 'f'.repeat(64) }), { code: 'USAGE', message: /is not the sha256 of the file sent/ });
  await t.rejects(deployParams({ transfer: { ...transferParams(tx), sha256: sha }, model: 'a' }), { message: /exactly one of --model .*--url .*--transfer/ });
  await t.rejects(prepareTransfer(join(dir, 'm.onnx'), 100), { code: 'USAGE', message: /at least 1024 bytes/ });
  await t.rejects(prepareTransfer(join(dir, 'none.onnx')), { code: 'USAGE', message: /--file .*none\.onnx: cannot read/ });
});
