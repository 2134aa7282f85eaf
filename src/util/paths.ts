import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder holding edgetune's package.json (works from src/ under tsx and from dist/ after a build). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find edgetune package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return (root = dir);
}

/** A sibling module's path with this module's own extension (.ts under tsx/tap, .js when built). */
export function siblingModule(fromUrl: string, name: string): string {
  const ext = fromUrl.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./${name}${ext}`, fromUrl));
}
