import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

import { atomicWriteFile } from './atomicWrite.js';

/** Writes a file atomically (temp file, fsync, rename), creating its folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  atomicWriteFile(path, data);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** `runs/<method>/<category>/<timestamp>` unless --out names the run folder itself. */
export function defaultRunDir(method: string, category: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:]/g, '-').replace(/\..+$/, '');
  return join('runs', method, category, stamp);
}

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Versions recorded in every run's config.json, so a result can be traced to its code. */
export function environmentVersions(): Record<string, string | null> {
  let commit: string | null = null;
  let dirty: string | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const status = execFileSync('git', ['status', '--porcelain'], { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    dirty = status.trim() ? 'yes' : 'no';
  } catch {
    commit = null;
  }
  let pkgVersion: string | null = null;
  try {
    pkgVersion = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    pkgVersion = null;
  }
  return {
    adbench: pkgVersion,
    gitCommit: commit,
    gitDirty: dirty,
    node: process.version,
    tfjs: tf.version.tfjs,
    platform: `${process.platform}-${process.arch}`,
  };
}
