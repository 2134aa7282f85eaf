// Reading what the agent needs from disk at start: TLS material and the package version.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EdgetuneError, errorMessage } from '../errors.js';
import { packageRoot } from '../util/paths.js';
import type { ResolvedConfig } from './config.js';
import type { TransportOptions } from './transport.js';

/** The PEM files named in broker.tls, read; a missing file is a config error naming the field. */
export async function tlsOptions(tls: ResolvedConfig['broker']['tls']): Promise<TransportOptions['tls']> {
  const read = async (p: string | undefined, what: string) => {
    if (!p) return undefined;
    try {
      return await readFile(p);
    } catch (e) {
      throw new EdgetuneError('CONFIG_INVALID', `/broker/tls/${what}: cannot read ${p}: ${errorMessage(e)}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read(tls.ca, 'ca'), read(tls.cert, 'cert'), read(tls.key, 'key')]);
  if (Boolean(cert) !== Boolean(key)) throw new EdgetuneError('CONFIG_INVALID', '/broker/tls: mutual TLS needs both cert and key');
  return {
    ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}),
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.servername ? { servername: tls.servername } : {}),
  };
}

/** The broker password: from broker.passwordFile (first line) when set, else broker.password. */
export async function brokerPassword(b: ResolvedConfig['broker']): Promise<string | undefined> {
  if (!b.passwordFile) return b.password;
  try {
    return (await readFile(b.passwordFile, 'utf8')).split('\n')[0];
  } catch (e) {
    throw new EdgetuneError('CONFIG_INVALID', `/broker/passwordFile: cannot read ${b.passwordFile}: ${errorMessage(e)}`);
  }
}

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}
