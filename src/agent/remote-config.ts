// The `config` job: read the agent's effective configuration, or change the few fields marked `x-remote` in the
// config schema (groups, heartbeat, job pacing). Nothing that names a file, a key, the broker or a protective
// limit can be changed from the network. Changes persist in <stateDir>/remote-config.json, a layer over the
// config file and the environment, and apply at once.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kind, Type, type TObject, type TSchema } from '@sinclair/typebox';
import { errorMessage, isENOENT, JobError } from '../errors.js';
import { ConfigSchema } from '../schema/config.js';
import { parseWithSchema, schemaErrors } from '../schema/validate.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { ResolvedConfig } from './config.js';
import type { HandlerSpec } from './jobs.js';
import type { Logger } from './log.js';

/** The part of a schema whose leaves are marked `x-remote`, every field optional, nothing else allowed. */
export function remoteSchema(schema: TSchema = ConfigSchema): TObject {
  const props: Record<string, TSchema> = {};
  for (const [key, sub] of Object.entries((schema as TObject).properties ?? {})) {
    if (sub['x-remote']) {
      const { default: _d, ...rest } = sub;
      props[key] = Type.Optional(rest as TSchema);
    } else if (sub[Kind] === 'Object') {
      const inner = remoteSchema(sub);
      if (Object.keys(inner.properties).length) props[key] = Type.Optional(inner);
    }
  }
  return Type.Object(props, { additionalProperties: false });
}

export const RemotePatchSchema = remoteSchema();
export type RemotePatch = Record<string, unknown>;

export const ConfigParamsSchema = Type.Object(
  {
    set: Type.Optional(RemotePatchSchema),
    reset: Type.Optional(Type.Boolean({ description: 'drop every earlier remote change first' })),
  },
  { additionalProperties: false },
);

export function remoteFile(stateDir: string): string {
  return join(stateDir, 'remote-config.json');
}

/** The persisted patch, or {} (a broken file is logged and ignored: the device keeps its local config). */
export async function loadRemotePatch(stateDir: string, log: Logger): Promise<RemotePatch> {
  try {
    const doc = JSON.parse(await readFile(remoteFile(stateDir), 'utf8')) as { v?: number; set?: unknown };
    const errors = schemaErrors(RemotePatchSchema, doc.set ?? {});
    if (doc.v !== 1 || errors.length) throw new Error(errors.join('; ') || 'v must be 1');
    return (doc.set ?? {}) as RemotePatch;
  } catch (e) {
    if (!isENOENT(e)) log.error(`ignoring ${remoteFile(stateDir)}: ${errorMessage(e)}`);
    return {};
  }
}

/** The config with the patch applied, validated as a whole; issues as `path: message`. */
export function applyPatch(base: ResolvedConfig, patch: RemotePatch): { ok: true; config: ResolvedConfig } | { ok: false; issues: string[] } {
  const merged = structuredClone(base) as unknown as Record<string, unknown>;
  merge(merged, patch);
  const { deviceId, ...rest } = merged as ResolvedConfig;
  const parsed = parseWithSchema(ConfigSchema, { ...rest, deviceId });
  if (!parsed.ok) return { ok: false, issues: parsed.errors };
  return { ok: true, config: { ...parsed.value, deviceId } };
}

/** A config safe to publish: secrets replaced. */
export function redactConfig(c: ResolvedConfig): ResolvedConfig {
  const out = structuredClone(c);
  if (out.broker.password !== undefined) out.broker.password = '(set)';
  if (out.broker.url) out.broker.url = out.broker.url.replace(/\/\/[^@/]*@/, '//(credentials)@');
  return out;
}

export interface ConfigJobDeps {
  stateDir: string;
  /** The config before any remote patch (file + environment + flags). */
  base: () => ResolvedConfig;
  current: () => RemotePatch;
  /** Applies a new effective config to the running agent. */
  apply: (config: ResolvedConfig, patch: RemotePatch) => Promise<void>;
}

export function configHandler(d: ConfigJobDeps): HandlerSpec {
  return {
    params: ConfigParamsSchema,
    light: true,
    run: async (params) => {
      const p = params as { set?: RemotePatch; reset?: boolean };
      if (p.set === undefined && !p.reset) {
        const r = applyPatch(d.base(), d.current());
        return { v: 1, config: redactConfig(r.ok ? r.config : d.base()), remote: d.current() };
      }
      const patch = structuredClone(p.reset ? {} : d.current());
      merge(patch, p.set ?? {});
      const r = applyPatch(d.base(), patch);
      if (!r.ok) throw new JobError(`the change makes the config invalid: ${r.issues.map((i) => `/params/set${i === '/' ? '' : ''}${i}`).join('; ')}`);
      await writeFileAtomic(remoteFile(d.stateDir), JSON.stringify({ v: 1, set: patch }, null, 2) + '\n');
      await d.apply(r.config, patch);
      return { v: 1, config: redactConfig(r.config), remote: patch };
    },
  };
}

function merge(dst: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src)) {
    const cur = dst[k];
    if (isObj(v) && isObj(cur)) merge(cur, v);
    else dst[k] = structuredClone(v);
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
