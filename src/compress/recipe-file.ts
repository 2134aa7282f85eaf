import { readFile } from 'node:fs/promises';
import { RecipeSchema, type Recipe } from '../schema/recipe.js';
import { parseWithSchema } from '../schema/validate.js';
import { EdgetuneError, isENOENT } from '../errors.js';

/** Checks a recipe document (from a file, a job or a flag) against the one schema; errors as `path: message`. */
export function parseRecipe(value: unknown, source = 'recipe'): Recipe {
  const r = parseWithSchema(RecipeSchema, value);
  if (!r.ok) throw new EdgetuneError('USAGE', `${source} is not a valid recipe:\n  ${r.errors.join('\n  ')}`);
  return r.value;
}

export async function readRecipeFile(path: string): Promise<Recipe> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new EdgetuneError('USAGE', isENOENT(e) ? `recipe file ${path} does not exist` : `cannot read recipe file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EdgetuneError('USAGE', `recipe file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseRecipe(json, `recipe file ${path}`);
}

/** The --quant shorthands of the CLI, each one recipe (DESIGN.md §4); the table in README.md lists them. */
export const QUANT_SHORTHANDS = ['int8-dynamic', 'int8-static', 'int8-weight', 'int4', 'fp16', 'fp16-full', 'fp32'] as const;

export interface QuantFlagOptions {
  /** int8-static: calibration method (default percentile) */
  calibration?: 'minmax' | 'percentile' | 'entropy';
  /** int8-static: calibration examples (default 128) */
  samples?: number;
  /** int4 / int8-weight: block size along K (default 32) */
  blockSize?: number;
}

/**
 * The --quant shorthand as a recipe. `perChannel` undefined keeps each mode's default (per-channel for static,
 * per-tensor for dynamic); flags that do not apply to the chosen mode are refused rather than ignored.
 */
export function recipeFromQuantFlag(quant: string, perChannel?: boolean, opts: QuantFlagOptions = {}): Recipe {
  const only = (flag: string, value: unknown, modes: string) => {
    if (value !== undefined) throw new EdgetuneError('USAGE', `--${flag} applies to --quant ${modes} only, not ${quant}`);
  };
  if (quant !== 'int8-static') { only('calibration', opts.calibration, 'int8-static'); only('samples', opts.samples, 'int8-static'); }
  if (quant !== 'int4' && quant !== 'int8-weight') only('block-size', opts.blockSize, 'int4 or int8-weight');
  if (!['int8-dynamic', 'int8-static'].includes(quant)) only('per-channel', perChannel, 'int8-dynamic or int8-static');
  const pc = perChannel === undefined ? {} : { perChannel };
  switch (quant) {
    case 'int8-dynamic': return { v: 1, quantize: { mode: 'dynamic', perChannel: perChannel ?? false } };
    case 'int8-static': {
      const calibration: NonNullable<NonNullable<Recipe['quantize']>['calibration']> = { method: opts.calibration ?? 'percentile' };
      if (opts.samples !== undefined) calibration.samples = opts.samples;
      return parseRecipe({ v: 1, quantize: { mode: 'static', ...pc, calibration } }, `--quant ${quant}`);
    }
    case 'int8-weight': case 'int4': {
      const bits = quant === 'int4' ? 4 : 8;
      return parseRecipe({ v: 1, quantize: { mode: 'weight-only', bits, ...(opts.blockSize !== undefined ? { blockSize: opts.blockSize } : {}) } }, `--quant ${quant}`);
    }
    case 'fp16': return { v: 1, quantize: { mode: 'fp16', perChannel: false } };
    case 'fp16-full': return { v: 1, quantize: { mode: 'fp16', fullGraph: true } };
    case 'fp32': case 'none': return { v: 1 };
    default: throw new EdgetuneError('USAGE', `--quant ${quant}: choose one of ${QUANT_SHORTHANDS.join(', ')}`);
  }
}
