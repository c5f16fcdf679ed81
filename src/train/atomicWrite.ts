import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Write a file so that readers see either the old or the complete new content, never a torn
 * one, even if the process is killed or the machine loses power: write to a temporary file in
 * the same directory, fsync it, rename over the target (atomic on POSIX within a file system),
 * then fsync the directory so the rename itself is durable.
 *
 * `write(fd)` writes the content with fs.writeSync (allows streaming large checkpoints without
 * one giant buffer).
 */
export function atomicWriteWith(path: string, write: (fd: number) => void): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w', 0o644);
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) {
      try {
        closeSync(fd);
      } catch {
        // already failing; keep the original error
      }
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** Atomically replace `path` with `data`. */
export function atomicWriteFile(path: string, data: string | Uint8Array): void {
  atomicWriteWith(path, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/** fs.writeSync until every byte is written (writeSync may write less than asked). */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
}

function fsyncDir(dir: string): void {
  // Directory fsync is not supported everywhere (e.g. Windows); durability there is best effort.
  let fd = -1;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // ignore
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
