import { createHash } from 'node:crypto';
import {
  accessSync, closeSync, constants, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync,
  statSync, writeFileSync, writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { WeightsError } from '../errors.js';

/**
 * Where pretrained weights come from, in this order:
 *   1. an explicit path (`--weights`): must exist and be readable, otherwise WeightsError;
 *   2. the local cache `<weightsDir>/<repo>/<filename>`, weightsDir = option, else env
 *      ADBENCH_WEIGHTS, else ./weights (relative to the working directory);
 *   3. a download from the Hugging Face hub, `${HF_ENDPOINT ?? 'https://huggingface.co'}/<repo>/resolve/main/<filename>`,
 *      into that same cache path (progress bar on stderr, sha256 check when known, atomic write).
 * When 3 fails (e.g. offline) the result is `{ok: false, reason}`: the caller warns loudly and
 * falls back to random initialisation, which reports must then say.
 */

export interface WeightsRequest {
  /** User-supplied file (`--weights`). When given, nothing else is tried. */
  explicitPath?: string;
  /** Cache root; default env ADBENCH_WEIGHTS, else ./weights. */
  weightsDir?: string;
  /** Hugging Face repo id, e.g. 'timm/wide_resnet50_2.tv_in1k'. */
  repo: string;
  /** File inside the repo, e.g. 'model.safetensors'. */
  filename: string;
  /** Expected SHA-256 (hex) of the file, when known; a download that differs is rejected. */
  sha256?: string;
  /** Never touch the network (only explicit path and cache). */
  offline?: boolean;
  /** Progress output; default process.stderr. */
  progress?: ProgressSink;
  /** Abort the download if no byte arrives for this long (ms); default 30 s. */
  idleTimeoutMs?: number;
}

export interface ProgressSink {
  isTTY?: boolean;
  write(s: string): unknown;
}

export type WeightsOrigin = 'explicit' | 'cache' | 'download';

export type ResolvedWeights =
  | { ok: true; path: string; origin: WeightsOrigin; url: string; sha256?: string }
  | { ok: false; path: null; reason: string; url: string; expectedPath: string };

export function defaultWeightsDir(): string {
  return resolve(process.env.ADBENCH_WEIGHTS ?? 'weights');
}

export function hfEndpoint(): string {
  return (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

/** Public download URL of a file on the hub (always the official host, for messages). */
export function hfUrl(repo: string, filename: string, endpoint = 'https://huggingface.co'): string {
  return `${endpoint}/${repo}/resolve/main/${filename}`;
}

export function cachePath(repo: string, filename: string, weightsDir = defaultWeightsDir()): string {
  return join(weightsDir, repo, filename);
}

/** Hex SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await new Promise<void>((res, rej) => {
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => res())
      .on('error', rej);
  });
  return h.digest('hex');
}

function howToGet(req: WeightsRequest, dest: string): string {
  return `Download ${hfUrl(req.repo, req.filename)} and put it at ${dest} (or point --weights at it / set ADBENCH_WEIGHTS to the folder holding ${req.repo}/${req.filename})`;
}

export async function resolveWeights(req: WeightsRequest): Promise<ResolvedWeights> {
  const weightsDir = resolve(req.weightsDir ?? defaultWeightsDir());
  const dest = cachePath(req.repo, req.filename, weightsDir);
  const officialUrl = hfUrl(req.repo, req.filename);

  if (req.explicitPath !== undefined) {
    const p = resolve(req.explicitPath);
    let problem: string | null = null;
    try {
      if (!statSync(p).isFile()) problem = 'is not a file';
      else accessSync(p, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problem = code === 'ENOENT' ? 'does not exist' : `is not readable (${code ?? String(e)})`;
    }
    if (problem) throw new WeightsError(`--weights ${p} ${problem}. ${howToGet(req, dest)}.`);
    return { ok: true, path: p, origin: 'explicit', url: officialUrl };
  }

  if (existsSync(dest)) {
    try {
      accessSync(dest, constants.R_OK);
    } catch {
      throw new WeightsError(`${dest} exists but is not readable; fix its permissions or delete it to download again`);
    }
    return { ok: true, path: dest, origin: 'cache', url: officialUrl, sha256: readRecordedSha(dest) };
  }

  const url = hfUrl(req.repo, req.filename, hfEndpoint());
  if (req.offline) {
    return { ok: false, path: null, reason: `not in the cache and downloads are disabled. ${howToGet(req, dest)}`, url, expectedPath: dest };
  }
  try {
    const sha = await downloadFile(url, dest, {
      sha256: req.sha256,
      progress: req.progress ?? process.stderr,
      label: `${req.repo}/${req.filename}`,
      idleTimeoutMs: req.idleTimeoutMs ?? 30_000,
    });
    return { ok: true, path: dest, origin: 'download', url, sha256: sha };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return { ok: false, path: null, reason: `download from ${url} failed: ${why}. ${howToGet(req, dest)}`, url, expectedPath: dest };
  }
}

function readRecordedSha(path: string): string | undefined {
  try {
    const first = readFileSync(`${path}.sha256`, 'utf8').trim().split(/\s+/)[0];
    return /^[0-9a-f]{64}$/.test(first) ? first : undefined;
  } catch {
    return undefined;
  }
}

function formatMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * Progress reporting: on a TTY one line rewritten with \r (at most every 100 ms); otherwise a few
 * plain lines (start, every 25 %, done) so logs stay short.
 */
class Progress {
  private lastDraw = 0;
  private nextQuarter = 25;
  private readonly t0 = Date.now();
  constructor(
    private readonly sink: ProgressSink,
    private readonly label: string,
    private readonly total: number | null,
  ) {
    const size = total !== null ? ` (${formatMB(total)} MB)` : '';
    if (!sink.isTTY) sink.write(`[weights] downloading ${label}${size}\n`);
  }

  update(done: number, force = false): void {
    const now = Date.now();
    const pct = this.total ? (100 * done) / this.total : null;
    if (this.sink.isTTY) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const rate = done / 1e6 / Math.max(1e-3, (now - this.t0) / 1000);
      const width = 30;
      const bar = pct !== null ? '#'.repeat(Math.floor((pct / 100) * width)).padEnd(width, '.') : '';
      const amount = this.total ? `${formatMB(done)}/${formatMB(this.total)} MB` : `${formatMB(done)} MB`;
      this.sink.write(`\r[weights] ${this.label} [${bar}] ${pct !== null ? pct.toFixed(0).padStart(3) + '%' : ''} ${amount} ${rate.toFixed(1)} MB/s`);
    } else if (pct !== null) {
      while (pct >= this.nextQuarter && this.nextQuarter < 100) {
        this.sink.write(`[weights] ${this.label}: ${this.nextQuarter}% (${formatMB(done)} MB)\n`);
        this.nextQuarter += 25;
      }
    }
  }

  finish(done: number, ok: boolean): void {
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    if (this.sink.isTTY) {
      if (ok) this.update(done, true);
      this.sink.write('\n');
    }
    this.sink.write(ok ? `[weights] ${this.label}: done, ${formatMB(done)} MB in ${secs} s\n` : `[weights] ${this.label}: failed after ${formatMB(done)} MB\n`);
  }
}

export interface DownloadOptions {
  sha256?: string;
  progress?: ProgressSink;
  label?: string;
  idleTimeoutMs?: number;
}

function errorChain(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 4; depth++) {
    if (cur instanceof Error) {
      const code = (cur as NodeJS.ErrnoException).code;
      parts.push(code && !cur.message.includes(code) ? `${cur.message} (${code})` : cur.message);
      cur = (cur as Error & { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': ');
}

/**
 * Downloads `url` to `dest` atomically (`<dest>.part-<pid>`, fsync, rename). Verifies `sha256`
 * when given; otherwise records the computed hash in `<dest>.sha256`. Returns the hex digest.
 * Honours HF_TOKEN (Authorization header) for gated repositories.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<string> {
  const sink = opts.progress ?? process.stderr;
  const label = opts.label ?? url;
  const idle = opts.idleTimeoutMs ?? 30_000;
  const ctrl = new AbortController();
  let timer = setTimeout(() => ctrl.abort(new Error(`no data for ${idle / 1000} s`)), idle);
  const kick = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(new Error(`no data for ${idle / 1000} s`)), idle);
  };
  const headers: Record<string, string> = { 'user-agent': 'adbench-tfjs' };
  if (process.env.HF_TOKEN) headers.authorization = `Bearer ${process.env.HF_TOKEN}`;
  const tmp = `${dest}.part-${process.pid}`;
  let fd: number | null = null;
  let done = 0;
  let progress: Progress | null = null;
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'follow', signal: ctrl.signal });
    } catch (e) {
      throw new Error(errorChain(e));
    }
    if (!res.ok || !res.body) {
      const hint = res.status === 401 || res.status === 403 ? ' (gated or private: set HF_TOKEN)' : '';
      throw new Error(`HTTP ${res.status} ${res.statusText}${hint}`);
    }
    const len = Number(res.headers.get('content-length'));
    const total = Number.isFinite(len) && len > 0 ? len : null;
    progress = new Progress(sink, label, total);
    const hash = createHash('sha256');
    mkdirSync(dirname(dest), { recursive: true });
    fd = openSync(tmp, 'w');
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        kick();
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        done += chunk.length;
        progress.update(done);
      }
    } catch (e) {
      throw new Error(`interrupted after ${done} bytes: ${errorChain(e)}`);
    }
    if (total !== null && done !== total) throw new Error(`got ${done} bytes, expected ${total}`);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    const digest = hash.digest('hex');
    if (opts.sha256 && digest !== opts.sha256.toLowerCase()) {
      throw new Error(`sha256 mismatch: got ${digest}, expected ${opts.sha256}`);
    }
    renameSync(tmp, dest);
    writeFileSync(`${dest}.sha256`, `${digest}  ${label}\n`);
    progress.finish(done, true);
    if (!opts.sha256) sink.write(`[weights] sha256 ${digest} (no known checksum; recorded in ${dest}.sha256)\n`);
    return digest;
  } catch (e) {
    progress?.finish(done, false);
    throw e;
  } finally {
    clearTimeout(timer);
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
  }
}
