import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The team's read-only shared material (paper tables, real MVTec bottle, extra weights) lives
 * beside the repository: `<repo>/../shared`. Tests find it from the repository root, not the
 * working directory, and say loudly what they skip when it is absent (a fresh clone), so that a
 * green run without it is never mistaken for full coverage.
 */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));
export const SHARED_ROOT = resolve(REPO_ROOT, '..', 'shared');

const warned = new Set<string>();

/** `<repo>/../shared/<relative>` when it exists; otherwise null, after one loud warning naming what is skipped. */
export function sharedPath(relative: string, skipping: string): string | null {
  const p = join(SHARED_ROOT, relative);
  if (existsSync(p)) return p;
  if (!warned.has(p)) {
    warned.add(p);
    console.warn(`\n[tests] WARNING: ${p} not found (shared material missing): SKIPPING ${skipping}\n`);
  }
  return null;
}
