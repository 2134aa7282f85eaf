// How the controller logs in to the broker: the same broker.tls and broker.passwordFile the agent reads (loaded
// by the agent's own src/agent/setup.ts), and the failures at connect that retrying cannot fix (an untrusted broker
// certificate, a refused client certificate, a refused login), turned into errors that say which flag to change.
import type { ResolvedConfig } from '../agent/config.js';
import { brokerPassword, tlsOptions } from '../agent/setup.js';
import type { TransportOptions } from '../agent/transport.js';
import { EdgetuneError, errorMessage } from '../errors.js';

export type TlsMaterial = NonNullable<TransportOptions['tls']>;

export interface BrokerCredentials {
  username?: string;
  password?: string;
  /** PEM contents (not paths) for mqtts://; absent for a plain connection. */
  tls?: TlsMaterial;
}

/** Username, password (or the first line of passwordFile) and TLS files of a resolved config, read from disk. */
export async function brokerCredentials(b: ResolvedConfig['broker']): Promise<BrokerCredentials> {
  const password = await brokerPassword(b);
  const tls = await tlsOptions(b.tls);
  const hasTls = Boolean(tls && (tls.ca || tls.cert || tls.key || tls.servername || tls.rejectUnauthorized === false));
  return {
    ...(b.username !== undefined ? { username: b.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(hasTls ? { tls } : {}),
  };
}

/** Node's codes for a broker certificate that does not verify against the trusted CAs. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** CONNACK codes for a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135, 138). */
const REFUSED = new Set([4, 5, 134, 135, 138]);

/**
 * An error at connect that the next attempt would hit again, as a config error naming the setting to fix;
 * undefined for anything worth retrying (a broker that is down, a dropped connection).
 */
export function fatalConnectError(e: unknown, url: string): EdgetuneError | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  const msg = errorMessage(e);
  if (typeof code === 'string' && UNTRUSTED.has(code)) {
    return new EdgetuneError('CONFIG_INVALID', `the broker ${url} presented a certificate this controller does not trust (${code}: ${msg}); give the CA that signed it with --ca (broker.tls.ca, EDGETUNE_BROKER_TLS_CA)`);
  }
  if (typeof code === 'string' && /^ERR_SSL_.*ALERT/.test(code)) {
    return new EdgetuneError('CONFIG_INVALID', `the broker ${url} refused the TLS handshake (${code}); a broker that requires client certificates needs --cert and --key (broker.tls.cert/key) from a CA it trusts`);
  }
  if (typeof code === 'number' && REFUSED.has(code)) {
    return new EdgetuneError('CONFIG_INVALID', `the broker ${url} refused the login (reason code ${code}: ${msg}); check --username and --password-file (broker.username, broker.passwordFile), or the client certificate's name`);
  }
  return undefined;
}
