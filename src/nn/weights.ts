import { createHash } from 'node:crypto';
import {
  accessSync, closeSync, constants, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync,
  statSync, writeFileSync, writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { WeightsError } from '../errors.js';

/**
 * Where pretrained weights come from, in this order:
 *   1. an explicit path (`--weights`): must exist and be readable, otherwise WeightsError;
 *   2. the local cache `<weightsDir>/<repo>/<filename>`, weightsDir = option, else env
 *      ADBENCH_WEIGHTS, else ./weights (relative to the working directory);
 *   3. when the request names a torchvision file (`torchvision.filename`, e.g.
 *      'wide_resnet50_2-95faca4d.pth'): `<weightsDir>/torchvision/<filename>`, then torch.hub's
 *      own cache `$TORCH_HOME/hub/checkpoints/<filename>` (TORCH_HOME default ~/.cache/torch);
 *   4. a download from the Hugging Face hub, `${HF_ENDPOINT ?? 'https://huggingface.co'}/<repo>/resolve/main/<filename>`,
 *      into the cache path of 2 (progress bar on stderr, sha256 check when known, atomic write);
 *   5. a download of the torchvision file from `${ADBENCH_TORCHVISION_URL ?? 'https://download.pytorch.org/models'}/<filename>`
 *      into the path of 3, accepted only when its SHA-256 starts with the hash prefix in the
 *      file name (torch.hub's check_hash rule: torchvision names files `<name>-<first 8+ hex of sha256>.pth`).
 * When 4 and 5 fail (e.g. offline) the result is `{ok: false, reason}` naming the files to supply
 * and where: the caller warns loudly (and falls back to another backbone or random init, which
 * reports must then say).
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
  /** The same weights as torchvision publishes them (.pth), tried after the hub file. */
  torchvision?: { filename: string };
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

export type WeightsOrigin = 'explicit' | 'cache' | 'torch-hub-cache' | 'download';

export type ResolvedWeights =
  | { ok: true; path: string; origin: WeightsOrigin; url: string; sha256?: string }
  | { ok: false; path: null; reason: string; url: string; expectedPath: string };

export function defaultWeightsDir(): string {
  return resolve(process.env.ADBENCH_WEIGHTS ?? 'weights');
}

export function torchvisionBaseUrl(): string {
  return (process.env.ADBENCH_TORCHVISION_URL ?? 'https://download.pytorch.org/models').replace(/\/+$/, '');
}

/** torch.hub's checkpoint cache ($TORCH_HOME/hub/checkpoints, TORCH_HOME default ~/.cache/torch). */
export function torchHubCheckpointsDir(): string {
  return join(process.env.TORCH_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torch'), 'hub', 'checkpoints');
}

/** The hash prefix torchvision embeds in its file names ('resnet18-f37072fd.pth' -> 'f37072fd'). */
export function torchvisionHashPrefix(filename: string): string | null {
  const m = /-([0-9a-f]{8,64})\.(?:pth|pt)$/.exec(filename);
  return m ? m[1] : null;
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

function howToGet(req: WeightsRequest, dest: string, weightsDir: string): string {
  const tv = req.torchvision
    ? `, or download https://download.pytorch.org/models/${req.torchvision.filename} and put it at ${join(weightsDir, 'torchvision', req.torchvision.filename)}`
    : '';
  return `Download ${hfUrl(req.repo, req.filename)} and put it at ${dest}${tv} (or point --weights at the file / set ADBENCH_WEIGHTS to the folder holding ${req.repo}/${req.filename})`;
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
    if (problem) throw new WeightsError(`--weights ${p} ${problem}. ${howToGet(req, dest, weightsDir)}.`);
    return { ok: true, path: p, origin: 'explicit', url: officialUrl };
  }

  const local = findCachedWeights(req, weightsDir);
  if (local) return local;

  const url = hfUrl(req.repo, req.filename, hfEndpoint());
  if (req.offline) {
    return { ok: false, path: null, reason: `not in the cache and downloads are disabled. ${howToGet(req, dest, weightsDir)}`, url, expectedPath: dest };
  }
  const progress = req.progress ?? process.stderr;
  const idleTimeoutMs = req.idleTimeoutMs ?? 30_000;
  const failures: string[] = [];
  try {
    const sha = await downloadFile(url, dest, { sha256: req.sha256, progress, label: `${req.repo}/${req.filename}`, idleTimeoutMs });
    return { ok: true, path: dest, origin: 'download', url, sha256: sha };
  } catch (e) {
    failures.push(`download from ${url} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (req.torchvision) {
    const name = req.torchvision.filename;
    const tvUrl = `${torchvisionBaseUrl()}/${name}`;
    const tvDest = join(weightsDir, 'torchvision', name);
    try {
      const sha = await downloadFile(tvUrl, tvDest, { sha256Prefix: torchvisionHashPrefix(name) ?? undefined, progress, label: `torchvision/${name}`, idleTimeoutMs });
      return { ok: true, path: tvDest, origin: 'download', url: tvUrl, sha256: sha };
    } catch (e) {
      failures.push(`download from ${tvUrl} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { ok: false, path: null, reason: `${failures.join('; ')}. ${howToGet(req, dest, weightsDir)}`, url, expectedPath: dest };
}

/**
 * The weights already on disk (steps 2 and 3 of the file comment), without any network: also what
 * callers use to decide whether a backbone is available before choosing it.
 */
export function findCachedWeights(req: WeightsRequest, weightsDir = resolve(req.weightsDir ?? defaultWeightsDir())): ResolvedWeights | null {
  const candidates: { path: string; origin: WeightsOrigin; url: string }[] = [
    { path: cachePath(req.repo, req.filename, weightsDir), origin: 'cache', url: hfUrl(req.repo, req.filename) },
  ];
  if (req.torchvision) {
    const name = req.torchvision.filename;
    const url = `https://download.pytorch.org/models/${name}`;
    candidates.push({ path: join(weightsDir, 'torchvision', name), origin: 'cache', url }, { path: join(torchHubCheckpointsDir(), name), origin: 'torch-hub-cache', url });
  }
  for (const c of candidates) {
    if (!existsSync(c.path)) continue;
    try {
      accessSync(c.path, constants.R_OK);
    } catch {
      throw new WeightsError(`${c.path} exists but is not readable; fix its permissions or delete it to download again`);
    }
    return { ok: true, path: c.path, origin: c.origin, url: c.url, sha256: readRecordedSha(c.path) };
  }
  return null;
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
  /** Accept only a file whose hex SHA-256 starts with this (torch.hub check_hash on file-name prefixes). */
  sha256Prefix?: string;
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
    if (opts.sha256Prefix && !digest.startsWith(opts.sha256Prefix.toLowerCase())) {
      throw new Error(`sha256 mismatch: got ${digest}, which does not start with ${opts.sha256Prefix} (the hash prefix in the file name)`);
    }
    renameSync(tmp, dest);
    writeFileSync(`${dest}.sha256`, `${digest}  ${label}\n`);
    progress.finish(done, true);
    if (!opts.sha256 && !opts.sha256Prefix) sink.write(`[weights] sha256 ${digest} (no known checksum; recorded in ${dest}.sha256)\n`);
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
