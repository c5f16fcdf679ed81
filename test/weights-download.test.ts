import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { chooseBackbone } from '../src/models/backbones/choice.js';
import { createBackbone } from '../src/models/backbones/index.js';
import { resolveWeights, torchvisionHashPrefix, type ProgressSink } from '../src/nn/weights.js';

// torchvision downloads (hash prefix in the file name, torch.hub's check_hash rule) and the
// default-backbone choice. Only a loopback HTTP server; no outside network.
const PTH = fileURLToPath(new URL('./fixtures/torch/resnet18_to_layer1.pth', import.meta.url));
const repo = 'timm/tiny_test.tv_in1k';
const filename = 'model.safetensors';
const saved = { hf: process.env.HF_ENDPOINT, tv: process.env.ADBENCH_TORCHVISION_URL, th: process.env.TORCH_HOME };
let tmp = '';
let server: Server;
let base = '';
let payload: Buffer;
let goodName = '';
const badName = 'tiny-00000000.pth';
const quiet = (): ProgressSink & { text: string } => {
  const s = { isTTY: false, text: '', write: (t: string) => (s.text += t) };
  return s;
};

beforeAll(async () => {
  await initBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'adbench-tv-'));
  process.env.TORCH_HOME = join(tmp, 'torch-home'); // an empty torch.hub cache
  payload = readFileSync(PTH);
  goodName = `tiny-${createHash('sha256').update(payload).digest('hex').slice(0, 8)}.pth`;
  server = createServer((req, res) => {
    if (req.url === `/models/${goodName}` || req.url === `/models/${badName}`) {
      res.writeHead(200, { 'content-length': String(payload.length) });
      res.end(payload);
    } else {
      res.writeHead(404); // includes the hub path: only the torchvision route serves
      res.end('not found');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.HF_ENDPOINT = base;
  process.env.ADBENCH_TORCHVISION_URL = `${base}/models`;
});
afterAll(async () => {
  for (const [k, v] of [['HF_ENDPOINT', saved.hf], ['ADBENCH_TORCHVISION_URL', saved.tv], ['TORCH_HOME', saved.th]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('torchvision weights download', () => {
  it('reads the hash prefix from torchvision file names', () => {
    expect(torchvisionHashPrefix('wide_resnet50_2-95faca4d.pth')).toBe('95faca4d');
    expect(torchvisionHashPrefix('resnet18-f37072fd.pth')).toBe('f37072fd');
    expect(torchvisionHashPrefix('model.pth')).toBeNull();
  });

  it('falls back from the hub (404) to torchvision, checks the hash prefix, caches atomically, then uses the cache', async () => {
    const dir = join(tmp, 'w1');
    const r = await resolveWeights({ weightsDir: dir, repo, filename, torchvision: { filename: goodName }, progress: quiet() });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.origin).toBe('download');
    expect(r.path).toBe(join(dir, 'torchvision', goodName));
    expect(readFileSync(r.path).equals(payload)).toBe(true);
    expect(readdirSync(join(dir, 'torchvision')).filter((f) => f.includes('.part-'))).toEqual([]);
    const again = await resolveWeights({ weightsDir: dir, repo, filename, torchvision: { filename: goodName }, offline: true });
    expect(again.ok && again.origin).toBe('cache');
  });

  it('rejects a file whose sha256 does not start with the name prefix and leaves nothing in the cache', async () => {
    const dir = join(tmp, 'w2');
    const r = await resolveWeights({ weightsDir: dir, repo, filename, torchvision: { filename: badName }, progress: quiet() });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(/does not start with 00000000/);
    const tvDir = join(dir, 'torchvision');
    expect(existsSync(tvDir) ? readdirSync(tvDir) : []).toEqual([]);
  });

  it('server down: a clear reason naming both URLs and where to put the file', async () => {
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9';
    process.env.ADBENCH_TORCHVISION_URL = 'http://127.0.0.1:9/models';
    try {
      const dir = join(tmp, 'w3');
      const r = await resolveWeights({ weightsDir: dir, repo, filename, torchvision: { filename: goodName }, progress: quiet() });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.reason).toMatch(/ECONNREFUSED|fetch failed/);
      expect(r.reason).toContain(`http://127.0.0.1:9/models/${goodName}`);
      expect(r.reason).toContain(`https://download.pytorch.org/models/${goodName}`);
      expect(r.reason).toContain(join(dir, 'torchvision', goodName));
    } finally {
      process.env.HF_ENDPOINT = base;
      process.env.ADBENCH_TORCHVISION_URL = `${base}/models`;
    }
  });

  it("uses torch.hub's cache ($TORCH_HOME/hub/checkpoints) and loads the .pth into the backbone", async () => {
    const hub = join(process.env.TORCH_HOME as string, 'hub', 'checkpoints');
    mkdirSync(hub, { recursive: true });
    writeFileSync(join(hub, 'resnet18-f37072fd.pth'), payload);
    try {
      const bb = await createBackbone('resnet18', { init: 'pretrained', weightsDir: join(tmp, 'w4'), featureLayers: ['layer1'], offline: true });
      expect(bb.initUsed).toBe('pretrained');
      expect(bb.source).toContain(join(hub, 'resnet18-f37072fd.pth'));
      expect(bb.source).toContain('torch-hub-cache');
      bb.module.dispose();
    } finally {
      rmSync(hub, { recursive: true, force: true });
    }
  });
});

describe('default backbone choice', () => {
  it('honours --backbone, --weights and random init; WRN-50 when on disk; else the shipped Tiny Darknet', () => {
    const empty = join(tmp, 'none');
    const base = { preferred: 'wide_resnet50_2', init: 'pretrained' as const, weightsDir: empty };
    expect(chooseBackbone({ ...base, requested: 'resnet18' })).toMatchObject({ name: 'resnet18', fallback: false });
    expect(chooseBackbone({ ...base, weightsPath: 'x.pth' })).toMatchObject({ name: 'wide_resnet50_2', fallback: false });
    expect(chooseBackbone({ ...base, init: 'random' })).toMatchObject({ name: 'wide_resnet50_2', fallback: false });
    const fb = chooseBackbone(base);
    expect(fb).toMatchObject({ name: 'tiny_darknet', fallback: true });
    expect(fb.reason).toContain(join(empty, 'timm', 'wide_resnet50_2.tv_in1k', 'model.safetensors'));
    expect(fb.reason).toContain('wide_resnet50_2-95faca4d.pth');
    expect(fb.reason).toContain(join('assets', 'backbones', 'tiny_darknet'));

    const withTv = join(tmp, 'tvdir');
    mkdirSync(join(withTv, 'torchvision'), { recursive: true });
    writeFileSync(join(withTv, 'torchvision', 'wide_resnet50_2-95faca4d.pth'), 'x');
    expect(chooseBackbone({ ...base, weightsDir: withTv })).toMatchObject({ name: 'wide_resnet50_2', fallback: false });
  });
});
