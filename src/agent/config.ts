// Loads the agent's configuration: bundled config/default.json, then the user's file, then EDGETUNE_* environment
// variables, then explicit overrides (CLI flags); later layers win, objects merge key by key, arrays replace.
//
// Path rule: a relative path (fields marked `x-path` in the schema, e.g. stateDir) resolves against the package
// root when it comes from the bundled config/default.json or from a schema default, and against the current
// working directory when it comes from the user's file, the environment or the command line. So `npm start` in
// a checkout keeps its state next to the code, while `EDGETUNE_STATE_DIR=state edgetune agent` means ./state.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { Kind, type TSchema, type TObject } from '@sinclair/typebox';
import { ConfigSchema, type Config } from '../schema/config.js';
import { parseWithSchema } from '../schema/validate.js';
import { ConfigError, errorMessage, isENOENT } from '../errors.js';
import { packageRoot } from '../util/paths.js';

export type ResolvedConfig = Config & { deviceId: string };

export interface LoadConfigOptions {
  /** A user config file (JSON); relative to cwd. */
  file?: string;
  /** Environment to read EDGETUNE_* overrides from; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Highest-priority values, e.g. from CLI flags. */
  overrides?: Record<string, unknown>;
  cwd?: string;
  /** Replaces config/default.json (tests). */
  defaultsFile?: string;
}

type Layer = { name: string; base: string; value: Record<string, unknown> };

export async function loadConfig(opts: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const cwd = opts.cwd ?? process.cwd();
  const root = packageRoot();
  const layers: Layer[] = [];
  const defaultsFile = opts.defaultsFile ?? join(root, 'config', 'default.json');
  layers.push({ name: defaultsFile, base: root, value: await readJsonFile(defaultsFile) });
  if (opts.file) {
    const file = resolve(cwd, opts.file);
    layers.push({ name: file, base: cwd, value: await readJsonFile(file) });
  }
  const env = envOverrides(opts.env ?? process.env);
  if (env.issues.length) {
    throw new ConfigError(`invalid environment override:\n  ${env.issues.join('\n  ')}`, env.issues);
  }
  if (Object.keys(env.value).length) layers.push({ name: 'environment', base: cwd, value: env.value });
  if (opts.overrides && Object.keys(opts.overrides).length) layers.push({ name: 'command line', base: cwd, value: structuredClone(opts.overrides) });

  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    resolvePaths(ConfigSchema, layer.value, layer.base);
    mergeLayer(merged, layer.value);
  }
  const parsed = parseWithSchema(ConfigSchema, merged);
  const issues = parsed.ok ? crossFieldIssues(parsed.value) : parsed.errors;
  if (!parsed.ok || issues.length) {
    const from = layers.map((l) => l.name).join(', ');
    throw new ConfigError(`invalid config (from ${from}):\n  ${issues.join('\n  ')}`, issues);
  }
  const config = parsed.value;
  // Schema defaults count as bundled: resolve whatever is still relative against the package root.
  resolvePaths(ConfigSchema, config as Record<string, unknown>, root);
  return { ...config, deviceId: config.deviceId ?? topicSafe(hostname()) };
}

/** A hostname as one MQTT topic level: characters outside [A-Za-z0-9._-] become '-'. */
export function topicSafe(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  return t || 'device';
}

async function readJsonFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isENOENT(e)) throw new ConfigError(`config file ${path} does not exist; pass an existing file with --config`);
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(e)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${errorMessage(e)}`);
  }
  if (!isPlainObject(value)) throw new ConfigError(`config file ${path}: /: expected a JSON object`);
  return value;
}

function crossFieldIssues(c: Config): string[] {
  const out: string[] = [];
  if (c.broker.reconnect.maxMs < c.broker.reconnect.minMs) {
    out.push(`/broker/reconnect/maxMs: must be >= minMs (${c.broker.reconnect.minMs})`);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `src` into `dst`. A layer that names a different defaultJob.type brings its own params: merging a
 * profile job onto the tune job's params would hand the profile handler fields it does not know.
 */
function mergeLayer(dst: Record<string, unknown>, src: Record<string, unknown>): void {
  const dj = src.defaultJob;
  const prev = dst.defaultJob;
  if (isPlainObject(dj) && isPlainObject(prev) && dj.type !== undefined && dj.type !== prev.type) {
    dst.defaultJob = { ...prev, params: {} };
  }
  deepMerge(dst, src);
}

function deepMerge(dst: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined) continue;
    const cur = dst[k];
    if (isPlainObject(v) && isPlainObject(cur)) deepMerge(cur, v);
    else dst[k] = isPlainObject(v) ? structuredClone(v) : v;
  }
}

/** Rewrites relative `x-path` fields of `value` (in place) as absolute paths under `base`. */
function resolvePaths(schema: TSchema, value: Record<string, unknown>, base: string): void {
  for (const [key, sub] of Object.entries((schema as TObject).properties ?? {})) {
    const v = value[key];
    if (sub[Kind] === 'Object' && isPlainObject(v)) resolvePaths(sub, v, base);
    else if (sub['x-path'] && typeof v === 'string' && v && !isAbsolute(v)) value[key] = resolve(base, v);
  }
}

/** The environment variable for a config path: broker.keepaliveS → EDGETUNE_BROKER_KEEPALIVE_S. */
export function envName(path: string[]): string {
  return 'EDGETUNE_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Every settable leaf of the schema with its environment variable name (for docs and --help). */
export function envVariables(schema: TSchema = ConfigSchema, path: string[] = []): Array<{ name: string; path: string[]; schema: TSchema }> {
  const out: Array<{ name: string; path: string[]; schema: TSchema }> = [];
  for (const [key, sub] of Object.entries((schema as TObject).properties ?? {})) {
    const p = [...path, key];
    if (p.length === 1 && key === 'v') continue;
    if (sub[Kind] === 'Object') out.push(...envVariables(sub, p));
    else out.push({ name: envName(p), path: p, schema: sub });
  }
  return out;
}

/** EDGETUNE_* variables turned into a config layer, each value converted by its schema type. */
export function envOverrides(env: Record<string, string | undefined>): { value: Record<string, unknown>; issues: string[] } {
  const value: Record<string, unknown> = {};
  const issues: string[] = [];
  for (const { name, path, schema } of envVariables()) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const conv = fromEnvString(raw, schema);
    if (!conv.ok) {
      issues.push(`${name} (/${path.join('/')}): ${conv.error}`);
      continue;
    }
    let node = value;
    for (const k of path.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]] = conv.value;
  }
  return { value, issues };
}

function fromEnvString(raw: string, schema: TSchema): { ok: true; value: unknown } | { ok: false; error: string } {
  const kind = schema[Kind];
  const literals = kind === 'Union' ? (schema.anyOf as TSchema[]).map((s) => s.const) : undefined;
  if (kind === 'Integer' || kind === 'Number' || (literals && literals.every((l) => typeof l === 'number'))) {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? { ok: true, value: n } : { ok: false, error: `expected a number, got '${raw}'` };
  }
  if (kind === 'Boolean') {
    if (raw === 'true' || raw === '1') return { ok: true, value: true };
    if (raw === 'false' || raw === '0') return { ok: true, value: false };
    return { ok: false, error: `expected true or false, got '${raw}'` };
  }
  if (kind === 'String' || kind === 'Literal' || kind === 'Union') return { ok: true, value: raw };
  if (kind === 'Array' && (schema.items as TSchema)[Kind] === 'String' && !raw.trim().startsWith('[')) {
    return { ok: true, value: raw.split(',').map((s) => s.trim()).filter(Boolean) };
  }
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false, error: `expected JSON, got '${raw}'` };
  }
}
