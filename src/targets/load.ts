import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { EdgetuneError, errorMessage, isENOENT } from '../errors.js';
import { parseWithSchema } from '../schema/validate.js';
import { packageRoot } from '../util/paths.js';
import { TargetSchema, type Target } from './schema.js';

/** The built-in targets/ folder, then the user's folder when one is given (its files win by name). */
export function defaultTargetDirs(userDir?: string): string[] {
  return userDir ? [join(packageRoot(), 'targets'), userDir] : [join(packageRoot(), 'targets')];
}

/**
 * Reads every `*.json` in each folder, in order; a later folder's target replaces an earlier one of the same
 * name. Any broken file stops the load with an error naming the file and each `path: message`.
 */
export async function loadTargets(dirs: string[] = defaultTargetDirs()): Promise<Target[]> {
  const byName = new Map<string, Target>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    } catch (e) {
      if (isENOENT(e)) throw new EdgetuneError('TARGET_INVALID', `targets folder ${dir} does not exist; create it or name another one`);
      throw new EdgetuneError('TARGET_INVALID', `cannot read targets folder ${dir}: ${errorMessage(e)}`, { cause: e });
    }
    for (const name of names) {
      const file = join(dir, name);
      const target = parseTarget(await readFile(file, 'utf8'), file);
      byName.set(target.name, target);
    }
  }
  if (byName.size === 0) throw new EdgetuneError('TARGET_INVALID', `no target files (*.json) in ${dirs.join(', ')}`);
  return [...byName.values()];
}

/** Parses and checks one target document; `file` names it in errors and must be `<name>.json`. */
export function parseTarget(text: string, file: string): Target {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new EdgetuneError('TARGET_INVALID', `${file}: not valid JSON (${errorMessage(e)})`);
  }
  const parsed = parseWithSchema(TargetSchema, raw);
  if (!parsed.ok) {
    throw new EdgetuneError('TARGET_INVALID', `${file}: invalid target:\n  ${parsed.errors.join('\n  ')}`);
  }
  const t = parsed.value;
  const problems: string[] = [];
  // The file name is how users find a target; a different inner name would make overrides silently miss.
  if (basename(file) !== `${t.name}.json`) problems.push(`/name: '${t.name}' differs from the file name; rename one`);
  const both = (t.match.isaAll ?? []).filter((f) => t.match.isaNone?.includes(f));
  if (both.length) problems.push(`/match: ${both.join(', ')} in both isaAll and isaNone, so nothing can match`);
  if (problems.length) throw new EdgetuneError('TARGET_INVALID', `${file}: invalid target:\n  ${problems.join('\n  ')}`);
  return t;
}
