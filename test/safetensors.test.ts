import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { WeightsError } from '../src/errors.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../src/nn/safetensors.js';
import { resolveWeights, type ProgressSink } from '../src/nn/weights.js';

const FIX = fileURLToPath(new URL('./fixtures/backbones/', import.meta.url));
let tmp = '';

beforeAll(async () => {
  await initBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'adbench-st-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sink(isTTY: boolean): ProgressSink & { text: string } {
  const s = { isTTY, text: '', write: (t: string) => (s.text += t) };
  return s;
}

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('safetensors reader', () => {
  it('reads F32/F16/BF16/I64/I32 written by an independent (Python) writer as float32', () => {
    const expected = JSON.parse(readFileSync(join(FIX, 'dtypes.expected.json'), 'utf8')) as Record<string, { shape: number[]; values: number[] }>;
    const m = readSafetensors(join(FIX, 'dtypes.safetensors'));
    expect([...m.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [k, e] of Object.entries(expected)) {
      const t = m.get(k) as tf.Tensor;
      expect(t.dtype).toBe('float32');
      expect(t.shape).toEqual(e.shape);
      const got = Array.from(t.dataSync());
      got.forEach((v, i) => expect(Object.is(v, Math.fround(e.values[i])) || v === Math.fround(e.values[i])).toBe(true));
    }
    expect(m.get('i64')?.shape).toEqual([]); // num_batches_tracked-style 0-d tensor
    expect(readSafetensorsHeader(join(FIX, 'dtypes.safetensors')).metadata).toEqual({ format: 'pt' });
    for (const t of m.values()) t.dispose();
  });

  it('round-trips F32 tensors (scalar, odd shapes, metadata) and writes atomically', () => {
    const p = join(tmp, 'rt.safetensors');
    const src = new Map<string, tf.Tensor>([
      ['a.weight', tf.randomNormal([3, 5, 7])],
      ['b', tf.scalar(4)],
      ['c.bias', tf.tensor1d([1, 2, 3], 'int32')],
      ['empty', tf.zeros([0, 4])],
    ]);
    writeSafetensors(p, src, { note: 'x' });
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const back = readSafetensors(p);
    expect([...back.keys()]).toEqual([...src.keys()]);
    for (const [k, t] of src) {
      expect(back.get(k)?.shape).toEqual(t.shape);
      expect(Array.from(back.get(k)?.dataSync() ?? [])).toEqual(Array.from(t.dataSync()));
    }
    const h = readSafetensorsHeader(p);
    expect(h.metadata).toEqual({ note: 'x' });
    expect(h.dataStart % 8).toBe(0);
    expect([...h.entries.values()].every((e) => e.dtype === 'F32')).toBe(true);
    const filtered = readSafetensors(p, { filter: (n) => n.startsWith('a.') });
    expect([...filtered.keys()]).toEqual(['a.weight']);
    for (const m of [src, back, filtered]) for (const t of m.values()) t.dispose();
  });

  it('names the file on truncation, a bad header or a missing file', () => {
    const good = join(tmp, 'good.safetensors');
    writeSafetensors(good, new Map([['w', tf.ones([16, 16])]]));
    const bytes = readFileSync(good);

    const trunc = join(tmp, 'trunc.safetensors');
    writeFileSync(trunc, bytes.subarray(0, bytes.length - 10));
    const e1 = errorOf(() => readSafetensors(trunc));
    expect(e1).toBeInstanceOf(WeightsError);
    expect(e1.message).toContain(trunc);
    expect(e1.message).toMatch(/truncated/);

    const tiny = join(tmp, 'tiny.safetensors');
    writeFileSync(tiny, bytes.subarray(0, 5));
    expect(errorOf(() => readSafetensors(tiny)).message).toContain(tiny);

    const badLen = join(tmp, 'badlen.safetensors');
    const b2 = Buffer.from(bytes);
    b2.writeBigUInt64LE(BigInt(bytes.length * 4), 0);
    writeFileSync(badLen, b2);
    expect(errorOf(() => readSafetensorsHeader(badLen))).toBeInstanceOf(WeightsError);

    const badJson = join(tmp, 'badjson.safetensors');
    const b3 = Buffer.from(bytes);
    b3[8] = 0x5b; // '[' instead of '{'
    writeFileSync(badJson, b3);
    const e3 = errorOf(() => readSafetensors(badJson));
    expect(e3).toBeInstanceOf(WeightsError);
    expect(e3.message).toContain(badJson);

    const badSize = join(tmp, 'badsize.safetensors');
    const hdr = JSON.stringify({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(badSize, Buffer.concat([len, Buffer.from(hdr), Buffer.alloc(16)]));
    expect(errorOf(() => readSafetensors(badSize)).message).toMatch(/12 bytes for F32\[2,2\]/);

    const missing = join(tmp, 'nope.safetensors');
    const e4 = errorOf(() => readSafetensors(missing));
    expect(e4).toBeInstanceOf(WeightsError);
    expect(e4.message).toContain(missing);
    // Truncate in place too (a download cut short).
    truncateSync(good, 20);
    expect(errorOf(() => readSafetensors(good))).toBeInstanceOf(WeightsError);
  });
});

describe('resolveWeights', () => {
  const repo = 'timm/tiny_test.tv_in1k';
  const filename = 'model.safetensors';
  let server: Server;
  let endpoint = '';
  let payload: Buffer;
  let payloadSha = '';
  let hits = 0;
  const oldEndpoint = process.env.HF_ENDPOINT;

  beforeAll(async () => {
    const p = join(tmp, 'payload.safetensors');
    writeSafetensors(p, new Map([['fc.weight', tf.randomNormal([64, 300])], ['fc.bias', tf.zeros([64])]]));
    payload = readFileSync(p);
    payloadSha = createHash('sha256').update(payload).digest('hex');
    server = createServer((req, res) => {
      hits++;
      // The hub redirects /resolve/ to a CDN; imitate it.
      if (req.url === `/${repo}/resolve/main/${filename}`) {
        res.writeHead(302, { location: '/cdn/blob' });
        res.end();
      } else if (req.url === '/cdn/blob') {
        res.writeHead(200, { 'content-length': String(payload.length), 'content-type': 'application/octet-stream' });
        // Several chunks so the progress bar moves.
        let off = 0;
        const step = Math.ceil(payload.length / 8);
        const push = (): void => {
          if (off >= payload.length) return void res.end();
          res.write(payload.subarray(off, off + step));
          off += step;
          setImmediate(push);
        };
        push();
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (oldEndpoint === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = oldEndpoint;
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('explicit path missing -> WeightsError naming the file, the HF URL and where to put it', async () => {
    const missing = join(tmp, 'does-not-exist.safetensors');
    const err = await resolveWeights({ explicitPath: missing, weightsDir: join(tmp, 'w0'), repo, filename }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(WeightsError);
    const msg = (err as Error).message;
    expect(msg).toContain(missing);
    expect(msg).toContain(`https://huggingface.co/${repo}/resolve/main/${filename}`);
    expect(msg).toContain(join(tmp, 'w0', repo, filename));
  });

  it('downloads through HF_ENDPOINT (redirect followed), verifies sha256, caches, then serves from cache', async () => {
    process.env.HF_ENDPOINT = endpoint;
    const dir = join(tmp, 'w1');
    const s = sink(false);
    const r = await resolveWeights({ weightsDir: dir, repo, filename, sha256: payloadSha, progress: s });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.origin).toBe('download');
    expect(r.path).toBe(join(dir, repo, filename));
    expect(readFileSync(r.path).equals(payload)).toBe(true);
    expect(readdirSync(join(dir, repo)).some((f) => f.includes('.part-'))).toBe(false);
    const lines = s.text.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.length).toBeLessThanOrEqual(6);
    expect(s.text).not.toContain('\r');
    expect(s.text).toMatch(/done/);
    const m = readSafetensors(r.path);
    expect(m.get('fc.weight')?.shape).toEqual([64, 300]);
    for (const t of m.values()) t.dispose();

    const before = hits;
    const again = await resolveWeights({ weightsDir: dir, repo, filename, sha256: payloadSha, progress: s });
    expect(again.ok && again.origin).toBe('cache');
    expect(hits).toBe(before);
  });

  it('records the computed sha256 when none is known; TTY progress uses \\r', async () => {
    process.env.HF_ENDPOINT = endpoint;
    const dir = join(tmp, 'w2');
    const s = sink(true);
    const r = await resolveWeights({ weightsDir: dir, repo, filename, progress: s });
    expect(r.ok && r.sha256).toBe(payloadSha);
    expect(readFileSync(join(dir, repo, `${filename}.sha256`), 'utf8')).toContain(payloadSha);
    expect(s.text).toContain('\r');
    expect(s.text).toContain(payloadSha);
  });

  it('rejects a checksum mismatch and leaves no file', async () => {
    process.env.HF_ENDPOINT = endpoint;
    const dir = join(tmp, 'w3');
    const r = await resolveWeights({ weightsDir: dir, repo, filename, sha256: '0'.repeat(64), progress: sink(false) });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(/sha256 mismatch/);
    expect(existsSync(join(dir, repo, filename))).toBe(false);
    expect(existsSync(join(dir, repo)) ? readdirSync(join(dir, repo)) : []).toEqual([]);
  });

  it('returns null with the reason when the hub is unreachable or the file is absent', async () => {
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // discard port: connection refused
    const r = await resolveWeights({ weightsDir: join(tmp, 'w4'), repo, filename, progress: sink(false) });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.path).toBeNull();
      expect(r.reason).toMatch(/ECONNREFUSED|fetch failed/);
      expect(r.reason).toContain(`https://huggingface.co/${repo}/resolve/main/${filename}`);
      expect(r.expectedPath).toBe(join(tmp, 'w4', repo, filename));
    }
    process.env.HF_ENDPOINT = endpoint;
    const r404 = await resolveWeights({ weightsDir: join(tmp, 'w5'), repo: 'timm/absent', filename, progress: sink(false) });
    expect(r404.ok).toBe(false);
    if (!r404.ok) expect(r404.reason).toMatch(/HTTP 404/);
    const off = await resolveWeights({ weightsDir: join(tmp, 'w6'), repo, filename, offline: true });
    expect(off.ok).toBe(false);
  });
});
