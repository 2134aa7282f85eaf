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

/** The --quant shorthand of the CLI as a recipe. */
export function recipeFromQuantFlag(quant: string, perChannel = false): Recipe {
  switch (quant) {
    case 'int8-dynamic': return { v: 1, quantize: { mode: 'dynamic', perChannel } };
    case 'fp16': return { v: 1, quantize: { mode: 'fp16', perChannel: false } };
    case 'fp32': case 'none': return { v: 1 };
    default: throw new EdgetuneError('USAGE', `--quant ${quant}: choose int8-dynamic or fp16`);
  }
}
