// The parameters of a `deploy` job as the controller builds them from the command line. A device refuses a
// deploy without the sha256 of the file, and a device with a public key refuses one without a signature, so the
// controller fills both in when it can (hashing the file when it has a copy, signing with the fleet key) and
// otherwise says what is missing before anything is sent.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { signModel } from '../agent/deploy/signature.js';
import { sha256File } from '../agent/deploy/store.js';
import { underParams } from '../agent/jobs.js';
import { parseWithSchema } from '../schema/validate.js';
import { UsageError, errorMessage } from '../errors.js';
import type { Recipe } from '../types.js';
import { DeployParamsSchema, type DeployParams } from './contract.js';

export interface DeployRequestArgs {
  /** Path of the model on the devices ('examples/…' or under their stateDir). */
  model?: string;
  /** Or an http(s) URL every device downloads (with resume). */
  url?: string;
  /** Or a chunked transfer over MQTT (src/fleet/transfer.ts): its id, chunk count and size; sha256 from it too. */
  transfer?: { id: string; chunks: number; bytes: number; sha256: string };
  sha256?: string;
  /** A copy of the model file on this machine to hash (default: `model`, when it exists here). */
  file?: string;
  /** The fleet's ed25519 private key (PEM file). */
  signKey?: string;
  recipe?: Recipe;
  name?: string;
  budget?: { latencyMs: number; percentile: 50 | 90 | 95 | 99 };
  /** Extra fields (--params), merged last. */
  extra?: Record<string, unknown>;
}

export async function readSigningKey(path: string): Promise<KeyObject> {
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(path));
  } catch (e) {
    throw new UsageError(`--sign-key ${path}: cannot read a private key (PEM): ${errorMessage(e)}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`--sign-key ${path}: a ${key.asymmetricKeyType} key; model signatures are ed25519 (openssl genpkey -algorithm ed25519)`);
  return key;
}

/** The job parameters, checked against the agent's own schema; `notes` says what was derived and how. */
export async function deployParams(a: DeployRequestArgs): Promise<{ params: DeployParams; notes: string[] }> {
  const notes: string[] = [];
  const sources = [a.model, a.url, a.transfer].filter((x) => x !== undefined).length;
  if (sources !== 1) throw new UsageError('name the model with exactly one of --model (a path on the devices), --url (a download) or --transfer --file F (sent over MQTT)');
  let sha256 = a.sha256?.toLowerCase() ?? a.transfer?.sha256;
  if (a.transfer && sha256 !== a.transfer.sha256) throw new UsageError(`--sha256 ${sha256} is not the sha256 of the file sent (${a.transfer.sha256})`);
  if (sha256 === undefined) {
    const local = a.file ?? a.model;
    const file = local !== undefined ? resolve(local) : undefined;
    const isFile = file ? (await stat(file).catch(() => undefined))?.isFile() : false;
    if (!file || !isFile) {
      throw new UsageError(`devices refuse a deploy without the model's sha256: give --sha256, or --file with a copy of the model on this machine${a.model !== undefined ? ` (${resolve(a.model)} is not a file here)` : ''}`);
    }
    sha256 = (await sha256File(file)).sha256;
    notes.push(`sha256 ${sha256} from ${file}`);
  }
  const params = {
    ...(a.model !== undefined ? { model: a.model } : a.url !== undefined ? { url: a.url } : { transfer: { id: a.transfer!.id, chunks: a.transfer!.chunks, bytes: a.transfer!.bytes } }),
    sha256,
    ...(a.signKey ? { signature: signModel(sha256, await readSigningKey(a.signKey)) } : {}),
    ...(a.recipe ? { recipe: a.recipe } : {}),
    ...(a.name ? { name: a.name } : {}),
    ...(a.budget ? { budget: a.budget } : {}),
    ...a.extra,
  };
  const r = parseWithSchema(DeployParamsSchema, params);
  if (!r.ok) throw new UsageError(`the deploy job would be refused by the devices:\n  ${underParams(r.errors).join('\n  ')}`);
  return { params: r.value, notes };
}
