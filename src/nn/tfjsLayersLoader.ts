import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { WeightsError } from '../errors.js';
import type { Module, StateDict } from './module.js';

/**
 * Reads TF.js Layers-format models (model.json + `groupN-shardMofK` binary files) from disk with
 * node:fs, into OUR modules (not tf.LayersModel): weights are addressed by Keras name
 * ('conv_dw_1/depthwise_kernel') and mapped to module keys ('conv_dw_1.weight').
 *
 * Shards may be missing (e.g. the 4 MiB conv_pw_13 group of a partial MobileNet copy): a group is
 * only read when the target module needs one of its weights, so a truncated backbone loads from
 * an incomplete folder, and a module that does need a missing shard gets a WeightsError naming it.
 */

export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  scale?: number;
  min?: number;
}

export interface TfjsWeightEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
}

export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightEntry[];
}

export interface TfjsLayersModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: Record<string, unknown>;
  weightsManifest: TfjsWeightGroup[];
}

export interface TfjsModelFiles {
  /** Absolute path of model.json. */
  path: string;
  dir: string;
  json: TfjsLayersModelJson;
}

/** Accepts a folder holding model.json or the model.json path itself. */
export function resolveModelJsonPath(pathOrDir: string): string {
  const p = resolve(pathOrDir);
  try {
    if (statSync(p).isDirectory()) return join(p, 'model.json');
  } catch {
    /* reported by the reader */
  }
  return p;
}

export function readTfjsModelJson(pathOrDir: string): TfjsModelFiles {
  const path = resolveModelJsonPath(pathOrDir);
  if (!existsSync(path)) throw new WeightsError(`${path}: TF.js model.json not found`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new WeightsError(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const j = json as Partial<TfjsLayersModelJson>;
  if (!j || typeof j !== 'object' || !j.modelTopology || !Array.isArray(j.weightsManifest)) {
    throw new WeightsError(`${path}: not a TF.js Layers model.json (needs modelTopology and weightsManifest)`);
  }
  return { path, dir: dirname(path), json: j as TfjsLayersModelJson };
}

function entryBytes(w: TfjsWeightEntry): number {
  const n = w.shape.reduce((a, b) => a * b, 1);
  if (w.quantization) return n * (w.quantization.dtype === 'uint8' ? 1 : 2);
  if (w.dtype === 'float32' || w.dtype === 'int32') return n * 4;
  if (w.dtype === 'bool') return n;
  throw new WeightsError(`weight ${w.name}: unsupported dtype ${w.dtype}`);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Decodes one weight (little-endian, as tfjs writes it) to float32. */
function decodeWeight(bytes: Uint8Array, w: TfjsWeightEntry): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = w.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const q = w.quantization;
  if (q) {
    if (q.dtype === 'float16') {
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
    } else {
      const scale = q.scale ?? 1;
      const min = q.min ?? 0;
      for (let i = 0; i < n; i++) out[i] = (q.dtype === 'uint8' ? dv.getUint8(i) : dv.getUint16(2 * i, true)) * scale + min;
    }
    return out;
  }
  if (w.dtype === 'float32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (w.dtype === 'int32') for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
  else for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
  return out;
}

export interface ReadTfjsWeightsOptions {
  /** Which Keras weights to materialise; groups with none needed are not even opened. Default: all. */
  need?: (kerasName: string) => boolean;
  /** Zero-fill missing shards instead of failing (only for reference models in tests). */
  zeroFillMissing?: boolean;
  /** Who needs the weights, for error messages. */
  requiredBy?: string;
}

export interface TfjsWeightsRead {
  /** Float32 tensors by Keras name, in the stored (Keras/tfjs) layout. Caller disposes. */
  weights: Map<string, tf.Tensor>;
  /** Shard files absent from the folder (needed ones only when zeroFillMissing). */
  missingFiles: string[];
}

/** Concatenated bytes of one group, or null when a shard is missing and zero-fill is off. */
function readGroup(dir: string, g: TfjsWeightGroup, zeroFill: boolean, missing: string[]): Uint8Array | null {
  const expected = g.weights.reduce((s, w) => s + entryBytes(w), 0);
  const parts: Uint8Array[] = [];
  for (const p of g.paths) {
    const file = join(dir, p);
    if (!existsSync(file)) {
      missing.push(file);
      if (!zeroFill) return null;
      return new Uint8Array(expected);
    }
    parts.push(readFileSync(file));
  }
  const total = parts.reduce((s, b) => s + b.length, 0);
  if (total !== expected) {
    throw new WeightsError(
      `${g.paths.map((p) => join(dir, p)).join(' + ')}: ${total} bytes, but model.json expects ${expected} for ` +
        `${g.weights.map((w) => w.name).join(', ')} (truncated or from another model); fetch the file again`,
    );
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const b of parts) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

export function readTfjsLayersWeights(pathOrDir: string, opts: ReadTfjsWeightsOptions = {}): TfjsWeightsRead {
  const { dir, path, json } = readTfjsModelJson(pathOrDir);
  const need = opts.need ?? (() => true);
  const weights = new Map<string, tf.Tensor>();
  const missingFiles: string[] = [];
  try {
    for (const g of json.weightsManifest) {
      const needed = g.weights.filter((w) => need(w.name));
      if (needed.length === 0) {
        for (const p of g.paths) if (!existsSync(join(dir, p))) missingFiles.push(join(dir, p));
        continue;
      }
      const before = missingFiles.length;
      const bytes = readGroup(dir, g, opts.zeroFillMissing ?? false, missingFiles);
      if (bytes === null) {
        throw new WeightsError(
          `${missingFiles.slice(before).join(', ')} missing: it holds ${needed.map((w) => w.name).join(', ')}, ` +
            `needed by ${opts.requiredBy ?? 'the model'} (model ${path}). Use a shallower backbone that stops before ` +
            `these layers, or get the complete model files into ${dir}.`,
        );
      }
      let off = 0;
      for (const w of g.weights) {
        const nb = entryBytes(w);
        if (need(w.name)) {
          weights.set(w.name, tf.tensor(decodeWeight(bytes.subarray(off, off + nb), w), w.shape, 'float32'));
        }
        off += nb;
      }
    }
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    throw e;
  }
  return { weights, missingFiles };
}

/** 'conv_dw_1/depthwise_kernel' -> 'conv_dw_1.weight', 'bn/moving_variance:0' -> 'bn.running_var'. */
export function kerasWeightToModuleKey(kerasName: string): string | null {
  const clean = kerasName.replace(/:\d+$/, '');
  const slash = clean.lastIndexOf('/');
  if (slash < 0) return null;
  const layer = clean.slice(0, slash).split('/').pop() ?? '';
  const map: Record<string, string> = {
    kernel: 'weight',
    depthwise_kernel: 'weight',
    bias: 'bias',
    gamma: 'weight',
    beta: 'bias',
    moving_mean: 'running_mean',
    moving_variance: 'running_var',
  };
  const ours = map[clean.slice(slash + 1)];
  return ours ? `${layer}.${ours}` : null;
}

export interface TfjsLoadReport {
  /** model.json path. */
  source: string;
  /** Module keys assigned. */
  loaded: string[];
  /** Keras weights in the manifest that the module does not use (layers not built). */
  unused: string[];
  /** Shard files absent from the folder (none of them needed, or loading would have thrown). */
  missingFiles: string[];
}

/**
 * Loads a TF.js Layers model's weights into `module`, whose children are named after the Keras
 * layers (conv/bn/depthwise weights already in tfjs layout: no conversion). Every parameter and
 * buffer of the module must be found (num_batches_tracked, which Keras lacks, is set to 0);
 * weights of layers the module did not build are ignored. Shape mismatches throw WeightsError.
 */
export function loadTfjsLayersInto(module: Module, pathOrDir: string): TfjsLoadReport {
  const { path } = readTfjsModelJson(pathOrDir);
  const entries = new Map(module.namedEntries());
  const need = (k: string): boolean => {
    const key = kerasWeightToModuleKey(k);
    return key !== null && entries.has(key);
  };
  const { weights, missingFiles } = readTfjsLayersWeights(path, { need, requiredBy: module.constructor.name });
  const dict: StateDict = new Map();
  const created: tf.Tensor[] = [];
  try {
    for (const [k, t] of weights) dict.set(kerasWeightToModuleKey(k) as string, t);
    const absent = [...entries.keys()].filter((k) => !dict.has(k) && !k.endsWith('num_batches_tracked'));
    if (absent.length > 0) {
      throw new WeightsError(
        `${path} has no weights for ${absent.length} ${module.constructor.name} entries (${absent.slice(0, 6).join(', ')}${absent.length > 6 ? ', ...' : ''}): wrong model folder?`,
      );
    }
    for (const k of entries.keys()) {
      if (k.endsWith('num_batches_tracked') && !dict.has(k)) {
        const z = tf.scalar(0);
        created.push(z);
        dict.set(k, z);
      }
    }
    module.loadStateDict(dict, { strict: true, source: path });
  } finally {
    for (const t of weights.values()) t.dispose();
    for (const t of created) t.dispose();
  }
  const all = readTfjsModelJson(path).json.weightsManifest.flatMap((g) => g.weights.map((w) => w.name));
  return {
    source: path,
    loaded: [...dict.keys()],
    unused: all.filter((n) => !need(n)),
    missingFiles,
  };
}

export interface TfjsFileHandlerOptions {
  /** Zero-fill missing shards (a partial model can then still be built as a LayersModel). */
  zeroFillMissing?: boolean;
  /** Edit the Keras topology before tfjs sees it (e.g. free the input size). */
  transformTopology?: (topology: Record<string, unknown>) => Record<string, unknown>;
}

/**
 * A tf.io.IOHandler that serves model.json + shards from disk, for `tf.loadLayersModel`
 * (reference models in parity tests; our code never runs tf.LayersModel).
 */
export function tfjsLayersFileHandler(pathOrDir: string, opts: TfjsFileHandlerOptions = {}): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const { dir, json } = readTfjsModelJson(pathOrDir);
      const specs: tf.io.WeightsManifestEntry[] = [];
      const chunks: Uint8Array[] = [];
      const missing: string[] = [];
      for (const g of json.weightsManifest) {
        const bytes = readGroup(dir, g, opts.zeroFillMissing ?? false, missing);
        if (bytes === null) throw new WeightsError(`${missing.join(', ')} missing (model ${basename(dir)})`);
        chunks.push(bytes);
        specs.push(...(g.weights as tf.io.WeightsManifestEntry[]));
      }
      const total = chunks.reduce((s, c) => s + c.length, 0);
      const data = new Uint8Array(total);
      let off = 0;
      for (const c of chunks) {
        data.set(c, off);
        off += c.length;
      }
      const topology = opts.transformTopology ? opts.transformTopology(json.modelTopology) : json.modelTopology;
      return {
        modelTopology: topology as tf.io.ModelArtifacts['modelTopology'],
        weightSpecs: specs,
        weightData: data.buffer,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
      };
    },
  };
}
