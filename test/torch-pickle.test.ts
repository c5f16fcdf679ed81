import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { WeightsError } from '../src/errors.js';
import { createBackbone } from '../src/models/backbones/index.js';
import { writeSafetensors } from '../src/nn/safetensors.js';
import { readTorchStateDict } from '../src/nn/torchPickle.js';
import { readWeightsFile } from '../src/nn/weightFile.js';
import { ZipArchive } from '../src/nn/zipArchive.js';

// Fixtures written once by test/fixtures/make_torch_pickle_fixtures.py (torch 1.13, Debian).
const FIX = fileURLToPath(new URL('./fixtures/torch/', import.meta.url));
type Expected = Record<string, { shape: number[]; values: number[] }>;
const EXPECTED = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as {
  tensors: Expected;
  nested: Expected;
  resnet18_to_layer1: Record<string, { shape: number[]; sum: number; first: number[] }>;
};
let tmp = '';

beforeAll(async () => {
  await initBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'adbench-pth-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function expectSame(got: Map<string, tf.Tensor>, want: Expected): void {
  expect([...got.keys()]).toEqual(Object.keys(want));
  for (const [k, w] of Object.entries(want)) {
    const t = got.get(k) as tf.Tensor;
    expect(t.shape, k).toEqual(w.shape);
    // Exact: every value is a float32 PyTorch produced (int64 2^40 and 123456789012 round as float32 does).
    expect(Array.from(t.dataSync()), k).toEqual(w.values.map((v) => Math.fround(v)));
  }
}

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('torch.save (.pth) reader', () => {
  it('reads f32/f16/bf16/f64/i64, 0-d, transposed and offset/strided views of a shared storage, archive folder named after the file', () => {
    const m = readTorchStateDict(join(FIX, 'tensors.pth'));
    expectSame(m, EXPECTED.tensors);
    tf.dispose([...m.values()]);
  });

  it('byteorder "big" with deflated entries gives the same tensors', () => {
    const m = readTorchStateDict(join(FIX, 'bigendian.pth'));
    expectSame(m, EXPECTED.tensors);
    tf.dispose([...m.values()]);
  });

  it('reads the legacy (pre-1.6, _use_new_zipfile_serialization=False) stream format, through readWeightsFile too', () => {
    const m = readWeightsFile(join(FIX, 'legacy.pth'));
    expectSame(m, EXPECTED.tensors);
    tf.dispose([...m.values()]);
    const cut = join(tmp, 'legacy-cut.pth');
    const full = readFileSync(join(FIX, 'legacy.pth'));
    writeFileSync(cut, full.subarray(0, full.length - 16));
    const e = errorOf(() => readTorchStateDict(cut));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain(cut);
    expect(e.message).toMatch(/truncated/);
  });

  it('finds a state_dict nested under "state_dict" beside non-tensor entries (folder "archive")', () => {
    const m = readWeightsFile(join(FIX, 'nested.pth'));
    expectSame(m, EXPECTED.nested);
    tf.dispose([...m.values()]);
  });

  it('refuses a pickle that calls an unknown global (no code execution), and files torch.save did not write, naming the file', () => {
    const evil = join(FIX, 'evil.pth');
    const e = errorOf(() => readTorchStateDict(evil));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain(evil);
    expect(e.message).toMatch(/global '(posix|os)\.system'/);

    const junk = join(tmp, 'junk.pth');
    writeFileSync(junk, Buffer.from('not a checkpoint at all'));
    const e2 = errorOf(() => readTorchStateDict(junk));
    expect(e2).toBeInstanceOf(WeightsError);
    expect(e2.message).toContain(junk);
    expect(e2.message).toMatch(/not written by torch\.save/);

    const cut = join(tmp, 'cut.pth');
    const full = readFileSync(join(FIX, 'tensors.pth'));
    writeFileSync(cut, full.subarray(0, full.length - 40));
    const e3 = errorOf(() => readTorchStateDict(cut));
    expect(e3).toBeInstanceOf(WeightsError);
    expect(e3.message).toContain(cut);
  });

  it('zip reader: deflate entries inflate to their bytes; unknown entries are a WeightsError', () => {
    // A hand-built one-entry deflate zip (local header, data, central directory, end record).
    const name = Buffer.from('a/b.txt');
    const body = Buffer.from('hello hello hello hello torch');
    const comp = deflateRawSync(body);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(comp.length, 18);
    local.writeUInt32LE(body.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(comp.length, 20);
    central.writeUInt32LE(body.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(0, 42);
    const cdOffset = local.length + name.length + comp.length;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(central.length + name.length, 12);
    end.writeUInt32LE(cdOffset, 16);
    const zip = new ZipArchive(Buffer.concat([local, name, comp, central, name, end]), 'mem.zip');
    expect(zip.names()).toEqual(['a/b.txt']);
    expect(zip.read('a/b.txt').toString()).toBe(body.toString());
    expect(errorOf(() => zip.read('nope'))).toBeInstanceOf(WeightsError);
  });

  it('--weights FILE.pth loads a torchvision-named resnet18 exactly as the same tensors in safetensors', async () => {
    const pth = join(FIX, 'resnet18_to_layer1.pth');
    const sd = readTorchStateDict(pth);
    for (const [k, w] of Object.entries(EXPECTED.resnet18_to_layer1)) {
      const t = sd.get(k) as tf.Tensor;
      expect(t.shape, k).toEqual(w.shape);
      expect(Array.from(t.dataSync()).slice(0, 4), k).toEqual(w.first.map((v) => Math.fround(v)));
      expect(t.sum().dataSync()[0], k).toBeCloseTo(w.sum, 2);
    }
    const st = join(tmp, 'r18_l1.safetensors');
    writeSafetensors(st, sd);
    tf.dispose([...sd.values()]);
    const a = await createBackbone('resnet18', { init: 'pretrained', weights: pth, featureLayers: ['layer1'] });
    const b = await createBackbone('resnet18', { init: 'pretrained', weights: st, featureLayers: ['layer1'] });
    expect(a.initUsed).toBe('pretrained');
    expect(a.source).toContain(pth);
    const x = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const fa = a.module.extract(x).layer1;
    const fb = b.module.extract(x).layer1;
    expect(fa.shape).toEqual([1, 8, 8, 64]);
    expect(tf.max(tf.abs(tf.sub(fa, fb))).dataSync()[0]).toBe(0);
    expect(tf.moments(fa).variance.dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, fa, fb]);
    a.module.dispose();
    b.module.dispose();
  });

  it('a .pth of another architecture is a WeightsError naming the file', async () => {
    const e = await createBackbone('resnet50', { init: 'pretrained', weights: join(FIX, 'resnet18_to_layer1.pth'), featureLayers: ['layer1'] }).then(
      () => new Error('no error'),
      (err: unknown) => err as Error,
    );
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('resnet18_to_layer1.pth');
  });
});
