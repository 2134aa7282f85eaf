// Where a remote job may point: the package's examples/ folder and the agent's stateDir, nothing else, so a
// controller (or whoever can publish to the job topic) cannot read or overwrite arbitrary files.
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { JobError } from '../errors.js';

export interface AllowedRoots {
  examples: string;
  stateDir: string;
}

/**
 * Relative paths starting with `examples/` mean the bundled examples; any other relative path is under stateDir.
 * Absolute paths must lie inside one of the two.
 */
export function resolveJobPath(p: string, roots: AllowedRoots): { ok: true; path: string } | { ok: false; reason: string } {
  const norm = p.replace(/\\/g, '/');
  if (p.includes('\0')) return { ok: false, reason: `'${p.replace(/\0/g, '\\0')}' contains a NUL byte` };
  const abs = isAbsolute(p) ? resolve(p) : norm.startsWith('examples/') ? resolve(dirname(roots.examples), norm) : resolve(roots.stateDir, p);
  if (within(roots.examples, abs) || within(roots.stateDir, abs)) return { ok: true, path: abs };
  return { ok: false, reason: `'${p}' is outside the folders jobs may use (${roots.examples}, ${roots.stateDir})` };
}

export function within(root: string, p: string): boolean {
  const rel = relative(resolve(root), p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/** The same rule after following symlinks, for a path that exists (or whose parent exists, for outputs). */
export async function confineReal(path: string, roots: AllowedRoots, field: string, existing: boolean): Promise<string> {
  const real = async (p: string) => realpath(p).catch(() => resolve(p));
  const target = existing ? await real(path) : join(await real(dirname(path)), basename(path));
  const realRoots = { examples: await real(roots.examples), stateDir: await real(roots.stateDir) };
  if (within(realRoots.examples, target) || within(realRoots.stateDir, target)) return path;
  throw new JobError(`/params/${field}: '${path}' leads outside the folders jobs may use (through a symlink)`);
}

/** resolveJobPath for a handler: the path, or a JobError naming the field. */
export function jobPath(p: string, roots: AllowedRoots, field: string): string {
  const r = resolveJobPath(p, roots);
  if (!r.ok) throw new JobError(`/params/${field}: ${r.reason}`);
  return r.path;
}

/** Validation issues for path fields (runs before a job is queued). */
export function pathIssues(fields: Record<string, string | undefined>, roots: AllowedRoots): string[] {
  const issues: string[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const r = resolveJobPath(value, roots);
    if (!r.ok) issues.push(`/params/${field}: ${r.reason}`);
  }
  return issues;
}
