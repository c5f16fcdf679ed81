import * as tf from '@tensorflow/tfjs';
import { ConfigError, WeightsError } from '../../errors.js';
import { Layer, Module, runFrozen, type StateDict } from '../../nn/module.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { Linear } from '../../nn/layers/linear.js';
import { GELU } from '../../nn/layers/activations.js';
import { Attention } from '../../nn/layers/attention.js';
import { normalInit } from '../../nn/init.js';
import { IMAGENET_NORMALIZATION, normalizeInput, type Normalization } from './common.js';
import { bicubicResize } from './bicubic.js';
import { readWeightsFile } from '../../nn/weightFile.js';

/**
 * DINOv2 Vision Transformer with register tokens (Darcet et al. 2024), as facebookresearch/dinov2
 * `models/vision_transformer.py` which Dinomaly copies (dinomaly.md §2): conv patch embedding,
 * CLS token + positional embedding (bicubically resampled per input size with DINOv2's 0.1 offset),
 * register tokens inserted after CLS without positional embedding, pre-norm blocks with
 * LayerScale (LayerNorm eps 1e-6, MLP GELU erf, qkv bias), final LayerNorm.
 *
 * Parameter names and shapes are DINOv2's own checkpoint layout (`dinov2_vitb14_reg4_pretrain.pth`:
 * cls_token, pos_embed [1, 1+37², D], register_tokens, mask_token, patch_embed.proj, blocks.i.{norm1,
 * attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm), so such a file
 * (converted to safetensors) loads strictly; `convertTimmViTCheckpoint` and
 * `convertHfDinov2Checkpoint` map timm `vit_*_patch14_reg4_dinov2.lvd142m` and HF
 * `facebook/dinov2-with-registers-*` files onto these names. The mask token is kept (unused at
 * inference) because it is in DINOv2's parameter count (TABLE6.md: 86,583,552 for ViT-B).
 *
 * Tensors are [B, tokens, D]; tokens are [CLS, R1..Rr, patches row-major], as DINOv2.
 */

export type ViTVariant = 'dinov2_vits14_reg4' | 'dinov2_vitb14_reg4' | 'dinov2_vitl14_reg4';

export interface ViTConfig {
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  patchSize: number;
  /** Training resolution: the stored positional grid is (imgSize / patchSize)². */
  imgSize: number;
  numRegisterTokens: number;
  /** DINOv2 `interpolate_offset` (0.1 in the models Dinomaly builds; 0 = resize to the exact size). */
  interpolateOffset: number;
  /** DINOv2 `init_values` of LayerScale (1.0 in the released configs; overwritten by weights). */
  layerScaleInit: number;
}

const DINOV2_COMMON = { mlpRatio: 4, patchSize: 14, imgSize: 518, numRegisterTokens: 4, interpolateOffset: 0.1, layerScaleInit: 1 } as const;

/** DINOv2 vit_small / vit_base / vit_large (hub/backbones.py) with 4 registers. */
export const VIT_CONFIGS: Readonly<Record<ViTVariant, ViTConfig>> = {
  dinov2_vits14_reg4: { ...DINOV2_COMMON, embedDim: 384, depth: 12, numHeads: 6 },
  dinov2_vitb14_reg4: { ...DINOV2_COMMON, embedDim: 768, depth: 12, numHeads: 12 },
  dinov2_vitl14_reg4: { ...DINOV2_COMMON, embedDim: 1024, depth: 24, numHeads: 16 },
};

/** DINOv2 LayerScale: x·γ per channel; name `gamma`. */
export class LayerScale extends Layer<tf.Tensor, tf.Tensor> {
  readonly gamma: tf.Variable;

  constructor(readonly dim: number, init = 1e-5) {
    super();
    this.gamma = this.addParameter('gamma', tf.fill([dim], init));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, this.gamma);
  }
}

/** timm/DINOv2 Mlp: fc1 → GELU (erf) → fc2, biases on. */
export class Mlp extends Layer<tf.Tensor, tf.Tensor> {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act = new GELU('none');

  constructor(readonly dim: number, readonly hidden: number) {
    super();
    this.fc1 = this.addModule('fc1', new Linear(dim, hidden));
    this.fc2 = this.addModule('fc2', new Linear(hidden, dim));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.call(this.act.call(this.fc1.call(x))));
  }
}

/** DINOv2 `Block` (NestedTensorBlock, no drop-path): x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x)). */
export class ViTBlock extends Layer<tf.Tensor3D, tf.Tensor3D> {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly ls1: LayerScale;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly ls2: LayerScale;

  constructor(dim: number, numHeads: number, mlpRatio: number, layerScaleInit: number) {
    super();
    this.norm1 = this.addModule('norm1', new LayerNorm(dim, 1e-6));
    this.attn = this.addModule('attn', new Attention(dim, numHeads, { qkvBias: true }));
    this.ls1 = this.addModule('ls1', new LayerScale(dim, layerScaleInit));
    this.norm2 = this.addModule('norm2', new LayerNorm(dim, 1e-6));
    this.mlp = this.addModule('mlp', new Mlp(dim, Math.round(dim * mlpRatio)));
    this.ls2 = this.addModule('ls2', new LayerScale(dim, layerScaleInit));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.ls1.call(this.attn.call(this.norm1.call(x) as tf.Tensor3D)));
      return tf.add(h, this.ls2.call(this.mlp.call(this.norm2.call(h)))) as tf.Tensor3D;
    });
  }
}

/** Conv patch embedding (`patch_embed.proj`): [B, H, W, 3] → [B, (H/p)·(W/p), D], row-major. */
export class PatchEmbed extends Layer<tf.Tensor4D, tf.Tensor3D> {
  readonly proj: Conv2d;

  constructor(readonly patchSize: number, readonly inChannels: number, readonly embedDim: number) {
    super();
    this.proj = this.addModule('proj', new Conv2d(inChannels, embedDim, patchSize, { stride: patchSize, padding: 'valid' }));
  }

  forward(x: tf.Tensor4D): tf.Tensor3D {
    const [B, H, W] = x.shape;
    const p = this.patchSize;
    if (H % p !== 0 || W % p !== 0) {
      // DINOv2's PatchEmbed asserts divisibility; a silent crop would shift Dinomaly's maps.
      throw new ConfigError(`ViT patch embedding: input ${H}x${W} is not a multiple of the patch size ${p}`);
    }
    return tf.tidy(() => tf.reshape(this.proj.call(x), [B, (H / p) * (W / p), this.embedDim]) as tf.Tensor3D);
  }
}

export interface ViTOptions {
  /** Overrides of the variant's config (tests build tiny ViTs this way). */
  config?: Partial<ViTConfig>;
}

export interface ViTLayerOutputs {
  /** Raw outputs (no final norm) of the requested blocks, in the order requested. [B, T, D] each. */
  layers: tf.Tensor3D[];
  /**
   * Output of the last executed block (max of the requested indices), no norm: the very tensor
   * of that entry in `layers` (dispose it once).
   */
  last: tf.Tensor3D;
}

export class VisionTransformer extends Module {
  readonly config: ViTConfig;
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: tf.Variable;
  readonly posEmbed: tf.Variable;
  readonly registerTokens: tf.Variable | null;
  readonly maskToken: tf.Variable;
  readonly blocks: ViTBlock[] = [];
  readonly norm: LayerNorm;
  readonly normalization: Normalization = IMAGENET_NORMALIZATION;
  /** Stored positional grid side M (M² patch positions). */
  readonly posGrid: number;

  constructor(
    readonly name: ViTVariant | 'custom',
    opts: ViTOptions = {},
  ) {
    super();
    const base = name === 'custom' ? VIT_CONFIGS.dinov2_vitb14_reg4 : VIT_CONFIGS[name];
    if (!base) throw new ConfigError(`unknown ViT variant '${name}' (have ${Object.keys(VIT_CONFIGS).join(', ')})`);
    const c: ViTConfig = { ...base, ...opts.config };
    if (c.imgSize % c.patchSize !== 0) throw new ConfigError(`ViT: imgSize ${c.imgSize} is not a multiple of patchSize ${c.patchSize}`);
    this.config = c;
    this.posGrid = c.imgSize / c.patchSize;
    const D = c.embedDim;
    // Parameter registration order = DINOv2's state_dict order.
    this.clsToken = this.addParameter('cls_token', normalInit([1, 1, D], 1e-6));
    this.posEmbed = this.addParameter('pos_embed', normalInit([1, 1 + this.posGrid * this.posGrid, D], 0.02));
    this.registerTokens = c.numRegisterTokens > 0 ? this.addParameter('register_tokens', normalInit([1, c.numRegisterTokens, D], 1e-6)) : null;
    this.maskToken = this.addParameter('mask_token', tf.zeros([1, D]));
    this.patchEmbed = this.addModule('patch_embed', new PatchEmbed(c.patchSize, 3, D));
    for (let i = 0; i < c.depth; i++) {
      this.blocks.push(this.addModule(`blocks.${i}`, new ViTBlock(D, c.numHeads, c.mlpRatio, c.layerScaleInit)));
    }
    this.norm = this.addModule('norm', new LayerNorm(D, 1e-6));
  }

  /** Number of prefix tokens (CLS + registers) before the patch tokens. */
  get numPrefixTokens(): number {
    return 1 + this.config.numRegisterTokens;
  }

  /**
   * DINOv2 interpolate_pos_encoding for an h0×w0 patch grid: [1, 1 + h0·w0, D]. The stored table
   * is returned unchanged when the grid matches and is square (as DINOv2); otherwise the patch
   * part is resized bicubically with scale factor (h0 + offset)/M, (w0 + offset)/M (offset 0:
   * resized to exactly h0×w0), no antialias.
   */
  positionalEmbedding(h0: number, w0: number): tf.Tensor3D {
    const M = this.posGrid;
    const D = this.config.embedDim;
    if (h0 === M && w0 === M) return this.posEmbed.clone() as tf.Tensor3D;
    return tf.tidy(() => {
      const cls = tf.slice(this.posEmbed, [0, 0, 0], [1, 1, D]);
      const grid = tf.reshape(tf.slice(this.posEmbed, [0, 1, 0], [1, M * M, D]), [M, M, D]) as tf.Tensor3D;
      const off = this.config.interpolateOffset;
      const resized = off
        ? bicubicResize(grid, { size: [Math.floor(M * ((h0 + off) / M)), Math.floor(M * ((w0 + off) / M))], scaleFactor: [(h0 + off) / M, (w0 + off) / M] })
        : bicubicResize(grid, { size: [h0, w0] });
      if (resized.shape[0] !== h0 || resized.shape[1] !== w0) {
        throw new ConfigError(`ViT positional embedding: resized to ${resized.shape[0]}x${resized.shape[1]}, expected ${h0}x${w0}`);
      }
      return tf.concat([cls, tf.reshape(resized, [1, h0 * w0, D])], 1) as tf.Tensor3D;
    });
  }

  /** DINOv2 prepare_tokens_with_masks (no masks) on a normalised NHWC batch: [B, 1 + R + N, D]. */
  prepareTokens(x: tf.Tensor4D): tf.Tensor3D {
    const [B, H, W] = x.shape;
    const p = this.config.patchSize;
    const D = this.config.embedDim;
    return tf.tidy(() => {
      const patches = this.patchEmbed.call(x);
      const cls = tf.broadcastTo(this.clsToken, [B, 1, D]);
      const t = tf.add(tf.concat([cls, patches], 1), this.positionalEmbedding(Math.floor(H / p), Math.floor(W / p)));
      if (!this.registerTokens) return t as tf.Tensor3D;
      const R = this.config.numRegisterTokens;
      const n = t.shape[1] as number;
      return tf.concat([
        tf.slice(t, [0, 0, 0], [B, 1, D]),
        tf.broadcastTo(this.registerTokens, [B, R, D]),
        tf.slice(t, [0, 1, 0], [B, n - 1, D]),
      ], 1) as tf.Tensor3D;
    });
  }

  /**
   * Runs blocks 0..max(layers) only (Dinomaly: blocks 2–9, so 10, 11 and the final norm never
   * run, dinomaly.md §2) on a normalised NHWC batch; returns those blocks' raw outputs.
   */
  forwardLayers(x: tf.Tensor4D, layers: readonly number[]): ViTLayerOutputs {
    if (layers.length === 0) throw new ConfigError('ViT forwardLayers: no block index given');
    for (const l of layers) {
      if (!Number.isInteger(l) || l < 0 || l >= this.blocks.length) {
        throw new ConfigError(`ViT forwardLayers: block ${l} out of range 0..${this.blocks.length - 1}`);
      }
    }
    const lastIdx = Math.max(...layers);
    return tf.tidy(() => {
      const kept = new Map<number, tf.Tensor3D>();
      let h = this.prepareTokens(x);
      for (let i = 0; i <= lastIdx; i++) {
        h = this.blocks[i].call(h);
        if (layers.includes(i)) kept.set(i, h);
      }
      return { layers: layers.map((l) => kept.get(l) as tf.Tensor3D), last: h };
    }) as ViTLayerOutputs;
  }

  /** Every block then the final norm (DINOv2 `x_norm`): [B, T, D] on a normalised NHWC batch. */
  forward(x: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      let h = this.prepareTokens(x);
      for (const b of this.blocks) h = b.call(h);
      return this.norm.call(h) as tf.Tensor3D;
    });
  }

  /**
   * Raw block outputs for images in [0, 1] (NHWC RGB): ImageNet normalisation, then
   * forwardLayers. Runs off the gradient tape when frozen. New tensors owned by the caller.
   */
  extractLayers(x: tf.Tensor4D, layers: readonly number[]): tf.Tensor3D[] {
    return runFrozen(this, () => tf.tidy(() => this.forwardLayers(normalizeInput(x, this.normalization), layers).layers));
  }

  /** Strict load of a PyTorch-layout state dict in DINOv2, timm or HF naming (detected by key). */
  loadTorchCheckpoint(dict: StateDict, opts: { source?: string } = {}): void {
    const conv = convertViTCheckpoint(dict, this);
    try {
      this.loadTorchStateDict(conv.dict, { strict: true, source: opts.source });
    } finally {
      for (const t of conv.created) t.dispose();
    }
  }
}

/** Parameters of a ViT config without building it (DINOv2 layout, mask token included). */
export function vitParameterCount(c: ViTConfig): number {
  const D = c.embedDim;
  const hidden = Math.round(D * c.mlpRatio);
  const grid = (c.imgSize / c.patchSize) ** 2;
  const block = 2 * 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + 2 * D + (D * hidden + hidden) + (hidden * D + D);
  return D /* cls */ + (1 + grid) * D + c.numRegisterTokens * D + D /* mask */ + (3 * c.patchSize ** 2 * D + D) + c.depth * block + 2 * D;
}

export interface ConvertedCheckpoint {
  dict: StateDict;
  /** Tensors made by the conversion (the caller disposes them; the rest share the input). */
  created: tf.Tensor[];
}

/** Picks the naming from the keys: HF (`embeddings.*`), timm (`reg_token`), else DINOv2. */
export function convertViTCheckpoint(dict: StateDict, model: VisionTransformer): ConvertedCheckpoint {
  const stripped: StateDict = new Map();
  for (const [k, t] of dict) stripped.set(k.startsWith('module.') ? k.slice('module.'.length) : k, t);
  if ([...stripped.keys()].some((k) => k.startsWith('embeddings.'))) return convertHfDinov2Checkpoint(stripped, model);
  if (stripped.has('reg_token') || (stripped.has('pos_embed') && !stripped.has('mask_token'))) return convertTimmViTCheckpoint(stripped, model);
  return { dict: stripped, created: [] };
}

/**
 * timm `vit_*_patch14_reg4_dinov2.lvd142m` → DINOv2 names. timm's `_convert_dinov2` folded
 * pos_embed[:, 0] into cls_token, dropped the CLS row of pos_embed (no_embed_class) and the mask
 * token, and renamed register_tokens to reg_token; CLS then gets a zero positional row here, which
 * gives the same tokens (CLS is never resampled), and the unused mask token is zero.
 */
export function convertTimmViTCheckpoint(dict: StateDict, model: VisionTransformer): ConvertedCheckpoint {
  const D = model.config.embedDim;
  const out: StateDict = new Map();
  const created: tf.Tensor[] = [];
  for (const [k, t] of dict) {
    if (k === 'reg_token') out.set('register_tokens', t);
    else if (k === 'pos_embed') {
      if (t.rank !== 3 || t.shape[2] !== D) throw new WeightsError(`timm ViT checkpoint: pos_embed has shape [${t.shape}], expected [1, N, ${D}]`);
      const p = tf.concat([tf.zeros([1, 1, D]), t], 1);
      created.push(p);
      out.set('pos_embed', p);
    } else if (k.startsWith('head.') && model.namedEntries().every(([n]) => !n.startsWith('head.'))) {
      // timm builds dinov2 models with an Identity head; a fine-tuned head is not part of the encoder.
      throw new WeightsError(`timm ViT checkpoint has a classifier '${k}': the DINOv2 encoder has no head`);
    } else out.set(k, t);
  }
  if (!out.has('mask_token')) {
    const m = tf.zeros([1, D]);
    created.push(m);
    out.set('mask_token', m);
  }
  return { dict: out, created };
}

/**
 * HF `facebook/dinov2-with-registers-*` (Dinov2WithRegistersModel) → DINOv2 names: separate
 * query/key/value Linears are concatenated into qkv (DINOv2 order q, k, v), layer_scaleN.lambda1
 * → lsN.gamma, layernorm → norm. An optional `dinov2_with_registers.` prefix is dropped.
 */
export function convertHfDinov2Checkpoint(dict: StateDict, model: VisionTransformer): ConvertedCheckpoint {
  void model;
  const out: StateDict = new Map();
  const created: tf.Tensor[] = [];
  const qkv = new Map<string, Partial<Record<'query' | 'key' | 'value', tf.Tensor>>>();
  const fixed: Record<string, string> = {
    'embeddings.cls_token': 'cls_token',
    'embeddings.mask_token': 'mask_token',
    'embeddings.register_tokens': 'register_tokens',
    'embeddings.position_embeddings': 'pos_embed',
    'embeddings.patch_embeddings.projection.weight': 'patch_embed.proj.weight',
    'embeddings.patch_embeddings.projection.bias': 'patch_embed.proj.bias',
    'layernorm.weight': 'norm.weight',
    'layernorm.bias': 'norm.bias',
  };
  for (const [k0, t] of dict) {
    const k = k0.startsWith('dinov2_with_registers.') ? k0.slice('dinov2_with_registers.'.length) : k0;
    if (fixed[k]) {
      out.set(fixed[k], t);
      continue;
    }
    const m = /^encoder\.layer\.(\d+)\.(.+)$/.exec(k);
    if (!m) {
      out.set(k, t); // left for the strict load to report as unexpected
      continue;
    }
    const [, i, rest] = m;
    const a = /^attention\.attention\.(query|key|value)\.(weight|bias)$/.exec(rest);
    if (a) {
      const key = `blocks.${i}.attn.qkv.${a[2]}`;
      const entry = qkv.get(key) ?? {};
      entry[a[1] as 'query' | 'key' | 'value'] = t;
      qkv.set(key, entry);
      continue;
    }
    const renamed = rest
      .replace(/^attention\.output\.dense\./, 'attn.proj.')
      .replace(/^layer_scale([12])\.lambda1$/, 'ls$1.gamma');
    out.set(`blocks.${i}.${renamed}`, t);
  }
  for (const [key, e] of qkv) {
    if (!e.query || !e.key || !e.value) throw new WeightsError(`HF DINOv2 checkpoint: ${key} lacks one of query/key/value`);
    const cat = tf.concat([e.query, e.key, e.value], 0);
    created.push(cat);
    out.set(key, cat);
  }
  return { dict: out, created };
}

/**
 * Strict load of a weights file into `model`: DINOv2's own `.pth` (e.g. dinov2_vitb14_reg4_pretrain.pth,
 * read by src/nn/torchPickle.ts) or a safetensors file in DINOv2, timm or HF naming. Throws
 * WeightsError naming the file and every missing / unexpected / misshaped key.
 */
export function loadViTWeightsFile(model: VisionTransformer, path: string): void {
  const dict = readWeightsFile(path);
  try {
    model.loadTorchCheckpoint(dict, { source: path });
  } finally {
    for (const t of dict.values()) t.dispose();
  }
}

/** A DINOv2-with-registers ViT by registry name (dinov2_vits14_reg4, dinov2_vitb14_reg4, dinov2_vitl14_reg4). */
export function dinov2ViT(name: ViTVariant, opts: ViTOptions = {}): VisionTransformer {
  if (!(name in VIT_CONFIGS)) throw new ConfigError(`unknown ViT variant '${name}' (have ${Object.keys(VIT_CONFIGS).join(', ')})`);
  return new VisionTransformer(name, opts);
}
