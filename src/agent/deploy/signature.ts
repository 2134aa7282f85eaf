// Model signatures: ed25519 over a short, domain-separated message naming the model's sha256, so the key signs
// exactly "this model for edgetune" and never bytes that could mean something else elsewhere. The controller
// signs with signModel(); the agent checks with verifyModelSignature() against the configured public key.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError, errorMessage } from '../../errors.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The bytes that are signed: `edgetune-model-v1:` followed by the lowercase hex sha256 of the model file. */
export function signedMessage(sha256: string): Buffer {
  if (!SHA256_HEX.test(sha256)) throw new TypeError(`sha256 must be 64 lowercase hex digits, got '${sha256}'`);
  return Buffer.from(`edgetune-model-v1:${sha256}`, 'utf8');
}

/** Signs a model's sha256 with an ed25519 private key (PEM or KeyObject); returns base64. */
export function signModel(sha256: string, privateKey: KeyObject | string): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`signing key must be ed25519, got ${key.asymmetricKeyType}`);
  return sign(null, signedMessage(sha256), key).toString('base64');
}

/** True when `signature` (base64) is a valid ed25519 signature of the model's sha256 under `publicKey`. */
export function verifyModelSignature(sha256: string, signature: string, publicKey: KeyObject): boolean {
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(null, signedMessage(sha256), publicKey, sig);
  } catch {
    return false;
  }
}

/** Reads the configured public key; it must be ed25519. */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  let key: KeyObject;
  try {
    key = createPublicKey(await readFile(path));
  } catch (e) {
    throw new ConfigError(`/deploy/publicKey: cannot read an ed25519 public key (PEM) from ${path}: ${errorMessage(e)}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(`/deploy/publicKey: ${path} holds a ${key.asymmetricKeyType} key; deploy signatures are ed25519`);
  }
  return key;
}
