import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, WeightsError } from '../../errors.js';
import { setInitSeed } from '../../nn/init.js';
import type { Module } from '../../nn/module.js';
import { readWeightsFile } from '../../nn/weightFile.js';
import { loadTfjsLayersInto, resolveModelJsonPath } from '../../nn/tfjsLayersLoader.js';
import { defaultWeightsDir, hfUrl, resolveWeights, type ProgressSink } from '../../nn/weights.js';
import { IMAGENET_NORMALIZATION, SYMMETRIC_NORMALIZATION, UNIT_NORMALIZATION, type FeatureExtractor, type Normalization } from './common.js';
import { TinyDarknet, TINY_DARKNET_DEFAULT_TAPS, TINY_DARKNET_TAPS } from './darknet.js';
import { MobileNetV1, MOBILENET_V1_DEFAULT_TAPS, MOBILENET_V1_TAPS } from './mobilenet.js';
import { RESNET_STAGES, ResNet, type ResNetArch, type ResNetStage } from './resnet.js';

export * from './common.js';
export { ResNet, resnet18, resnet50, wideResnet50_2, RESNET_CONFIGS, RESNET_STAGES, adaptTorchResNetCheckpoint } from './resnet.js';
export type { ResNetArch, ResNetStage, ResNetOptions, ResNetConfig, ResNetFeatures } from './resnet.js';
export { TinyDarknet, TINY_DARKNET_DEFAULT_TAPS } from './darknet.js';
export { MobileNetV1, MOBILENET_V1_DEFAULT_TAPS } from './mobilenet.js';
export { kerasSamePads } from './keras.js';
export { VisionTransformer, ViTBlock, LayerScale, Mlp, PatchEmbed, dinov2ViT, loadViTWeightsFile, vitParameterCount, VIT_CONFIGS, convertViTCheckpoint, convertTimmViTCheckpoint, convertHfDinov2Checkpoint } from './vit.js';
export type { ViTVariant, ViTConfig, ViTOptions, ViTLayerOutputs } from './vit.js';
export { bicubicResize, bicubicMatrix } from './bicubic.js';

/**
 * Backbone registry: name -> how to build it, its default feature taps (with stride and channel
 * count), its input normalisation and where its pretrained weights come from.
 *
 * Weight lookup (`createBackbone`):
 * - torchvision models (safetensors from the Hugging Face hub, timm `*.tv_in1k` = torchvision V1
 *   weights, or torchvision's own .pth): `--weights FILE` (.safetensors or .pth), else the
 *   weights folder (option, env ADBENCH_WEIGHTS or ./weights) and torch.hub's cache, else a
 *   download (hub, then download.pytorch.org); see src/nn/weights.ts.
 * - TF.js Layers models (mobilenet_v1, tiny_darknet): `--weights DIR|model.json`, else
 *   `<weightsDir>/<folder>/model.json`, else the copy shipped in assets/ (Tiny Darknet), else
 *   `../shared/weights/<folder>/model.json` relative to the working directory. No download.
 * Not obtainable -> random init with a loud `warning` (callers print it and mark reports
 * "random-init backbone"). An explicit path that is missing or does not fit -> WeightsError.
 */

export type BackboneName = 'wide_resnet50_2' | 'resnet18' | 'resnet50' | 'mobilenet_v1' | 'tiny_darknet';
export const BACKBONE_NAMES: readonly BackboneName[] = ['wide_resnet50_2', 'resnet18', 'resnet50', 'mobilenet_v1', 'tiny_darknet'];

export type DefaultWeights =
  | { kind: 'huggingface'; repo: string; filename: string; sha256?: string; description: string; torchvision?: { filename: string } }
  | { kind: 'tfjs-layers'; folder: string; description: string; shipped?: string };

/** The repository's assets/ folder (weights shipped with the code), found from this file, not the cwd. */
export const ASSETS_DIR = fileURLToPath(new URL('../../../assets/', import.meta.url));

/** A backbone: a Module that extracts features. */
export type Backbone = Module & FeatureExtractor;

export interface BackboneBuildOptions {
  /** Taps `extract` returns; default the spec's featureLayers. */
  featureLayers?: readonly string[];
  /**
   * Build the whole network (ResNet: layer4 + fc, so Table-6 parameter counts and strict loads of
   * full checkpoints work; Tiny Darknet: classifier). Default: only up to the deepest tap.
   */
  full?: boolean;
}

export interface BackboneSpec {
  name: BackboneName;
  description: string;
  /** Default taps, finest first. */
  featureLayers: readonly string[];
  /** Stride and channels of the default taps. */
  strides: Readonly<Record<string, number>>;
  channels: Readonly<Record<string, number>>;
  normalization: Normalization;
  defaultWeights: DefaultWeights;
  build(opts?: BackboneBuildOptions): Backbone;
}

function pick(rec: Readonly<Record<string, number>>, keys: readonly string[]): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, rec[k]]));
}

function resnetSpec(name: ResNetArch, description: string, sha256: string, torchvisionFile: string, strideCh: Record<string, number>): BackboneSpec {
  const taps: ResNetStage[] = ['layer2', 'layer3'];
  return {
    name,
    description,
    featureLayers: taps,
    strides: { layer2: 8, layer3: 16 },
    channels: strideCh,
    normalization: IMAGENET_NORMALIZATION,
    defaultWeights: {
      kind: 'huggingface',
      repo: `timm/${name}.tv_in1k`,
      filename: 'model.safetensors',
      sha256,
      description: `torchvision IMAGENET1K_V1 weights, as timm/${name}.tv_in1k on the Hugging Face hub`,
      torchvision: { filename: torchvisionFile },
    },
    build(opts: BackboneBuildOptions = {}): Backbone {
      const feats = (opts.featureLayers ?? taps) as readonly string[];
      for (const f of feats) {
        if (!(RESNET_STAGES as readonly string[]).includes(f)) throw new ConfigError(`${name}: unknown feature layer '${f}' (${RESNET_STAGES.join(', ')})`);
      }
      const deepest = RESNET_STAGES[Math.max(...feats.map((f) => RESNET_STAGES.indexOf(f as ResNetStage)))];
      return new ResNet(name, { upTo: opts.full ? 'fc' : deepest, featureLayers: feats as ResNetStage[] });
    },
  };
}

export const BACKBONES: Readonly<Record<BackboneName, BackboneSpec>> = {
  // SHA-256 values: Git LFS pointers of the hub files (huggingface.co/timm/<name>.tv_in1k, model.safetensors).
  wide_resnet50_2: resnetSpec(
    'wide_resnet50_2',
    'WideResNet-50-2 (torchvision V1), PatchCore/GLASS backbone; 68.9M params, 24.9M up to layer3',
    'df6fb6c4824769769de18e14088475fd6ee94236849aa4e5d8022ba9d9a9a16c',
    'wide_resnet50_2-95faca4d.pth',
    { layer2: 512, layer3: 1024 },
  ),
  resnet18: resnetSpec(
    'resnet18',
    'ResNet-18 (torchvision V1), CutPaste encoder; 11.7M params',
    '694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81',
    'resnet18-f37072fd.pth',
    { layer2: 128, layer3: 256 },
  ),
  resnet50: resnetSpec(
    'resnet50',
    'ResNet-50 (torchvision V1); 25.6M params',
    '5d061a3c593d795bfe682d9b152bafbcf550579873492def3515b46db1189888',
    'resnet50-0676ba61.pth',
    { layer2: 512, layer3: 1024 },
  ),
  mobilenet_v1: {
    name: 'mobilenet_v1',
    description: 'MobileNet v1 1.0/224 (Keras/tfjs-models), truncated after conv_pw_12; 3.2M params',
    featureLayers: MOBILENET_V1_DEFAULT_TAPS,
    strides: pick(MOBILENET_V1_TAPS.strides, MOBILENET_V1_DEFAULT_TAPS),
    channels: pick(MOBILENET_V1_TAPS.channels, MOBILENET_V1_DEFAULT_TAPS),
    normalization: SYMMETRIC_NORMALIZATION,
    defaultWeights: {
      kind: 'tfjs-layers',
      folder: 'tfjs_mobilenet_v1_1.0_224_partial',
      description: 'Google tfjs-models mobilenet_v1_1.0_224 (TF.js Layers; conv_pw_13 shard may be absent)',
    },
    build: (opts: BackboneBuildOptions = {}): Backbone =>
      new MobileNetV1({ featureLayers: opts.featureLayers ?? MOBILENET_V1_DEFAULT_TAPS }),
  },
  tiny_darknet: {
    name: 'tiny_darknet',
    description: 'Tiny Darknet ImageNet classifier (ml5 TF.js Layers); 1.05M params',
    featureLayers: TINY_DARKNET_DEFAULT_TAPS,
    strides: pick(TINY_DARKNET_TAPS.strides, TINY_DARKNET_DEFAULT_TAPS),
    channels: pick(TINY_DARKNET_TAPS.channels, TINY_DARKNET_DEFAULT_TAPS),
    normalization: UNIT_NORMALIZATION,
    defaultWeights: {
      kind: 'tfjs-layers',
      folder: 'ml5_darknet_darknettiny',
      description: 'ml5 darknettiny (Darknet Tiny Darknet ImageNet weights, TF.js Layers)',
      shipped: 'backbones/tiny_darknet',
    },
    build: (opts: BackboneBuildOptions = {}): Backbone =>
      new TinyDarknet({ featureLayers: opts.featureLayers ?? TINY_DARKNET_DEFAULT_TAPS, includeTop: opts.full }),
  },
};

export function getBackboneSpec(name: string): BackboneSpec {
  const spec = (BACKBONES as Record<string, BackboneSpec | undefined>)[name];
  if (!spec) throw new ConfigError(`unknown backbone '${name}'; choose one of ${BACKBONE_NAMES.join(', ')}`);
  return spec;
}

export interface CreateBackboneOptions extends BackboneBuildOptions {
  /** Explicit weights: a .safetensors or torch.save .pth file (ResNets) or a TF.js model folder / model.json. */
  weights?: string;
  init: 'pretrained' | 'random';
  /** Weights cache root; default env ADBENCH_WEIGHTS, else ./weights. */
  weightsDir?: string;
  /** Seed for the random initialisation (also used as fallback); calls setInitSeed. */
  seed?: number | string;
  /** Leave parameters trainable (fine-tuning); default false = frozen. The module is returned in eval mode. */
  trainable?: boolean;
  /** Never download. */
  offline?: boolean;
  /** Download progress output (default stderr). */
  progress?: ProgressSink;
}

export interface CreatedBackbone {
  module: Backbone;
  initUsed: 'pretrained' | 'random-init';
  /** Where the weights came from (file path and origin), or how they were initialised. */
  source: string;
  /** Set when pretrained weights were asked for but not obtainable: print it, loudly. */
  warning?: string;
  spec: BackboneSpec;
}

/**
 * Folders searched for a TF.js Layers backbone, in order: the weights folder (a user's copy
 * wins), the copy shipped in assets/ (Tiny Darknet), the team's ../shared/weights.
 */
export function tfjsWeightCandidates(folder: string, weightsDir?: string, shipped?: string): string[] {
  return [
    join(resolve(weightsDir ?? defaultWeightsDir()), folder),
    ...(shipped ? [join(ASSETS_DIR, shipped)] : []),
    resolve('..', 'shared', 'weights', folder),
  ];
}

function loudWarning(name: string, why: string): string {
  return (
    `WARNING: pretrained weights for backbone '${name}' are not available (${why}). ` +
    `Using a RANDOMLY INITIALISED backbone: features are not ImageNet features and results are NOT comparable to the paper. ` +
    `Reports are marked "random-init backbone".`
  );
}

function loadResNetFile(module: ResNet, path: string): string[] {
  const dict = readWeightsFile(path);
  try {
    if (module.fc) {
      module.loadTorchCheckpoint(dict, { source: path });
      return [];
    }
    return module.loadPartial(dict, { source: path }).ignored;
  } finally {
    for (const t of dict.values()) t.dispose();
  }
}

/**
 * Builds a backbone and gives it pretrained weights when it can (see the file comment for the
 * lookup order). Never silently random: `initUsed` and `warning` say so.
 */
export async function createBackbone(name: string, opts: CreateBackboneOptions): Promise<CreatedBackbone> {
  const spec = getBackboneSpec(name);
  if (opts.seed !== undefined) setInitSeed(`backbone/${name}/${opts.seed}`);
  const module = spec.build(opts);
  const finish = (r: Omit<CreatedBackbone, 'module' | 'spec'>): CreatedBackbone => {
    module.eval();
    if (!opts.trainable) module.setTrainable(false);
    return { module, spec, ...r };
  };
  const randomSource = `random init (seed ${opts.seed ?? 'default'})`;
  if (opts.init === 'random') {
    if (opts.weights) {
      module.dispose();
      throw new ConfigError(`backbone ${name}: --weights ${opts.weights} given together with random init; drop one of them`);
    }
    return finish({ initUsed: 'random-init', source: randomSource });
  }

  try {
    const dw = spec.defaultWeights;
    if (dw.kind === 'huggingface') {
      const r = await resolveWeights({
        explicitPath: opts.weights,
        weightsDir: opts.weightsDir,
        repo: dw.repo,
        filename: dw.filename,
        sha256: dw.sha256,
        torchvision: dw.torchvision,
        offline: opts.offline,
        progress: opts.progress,
      });
      if (!r.ok) return finish({ initUsed: 'random-init', source: randomSource, warning: loudWarning(name, r.reason) });
      let ignored: string[];
      try {
        ignored = loadResNetFile(module as ResNet, r.path);
      } catch (e) {
        if (e instanceof WeightsError && r.origin !== 'explicit') {
          throw new WeightsError(`${e.message}. The cached file ${r.path} does not fit ${name}: delete it to download again, or pass --weights.`);
        }
        throw e;
      }
      const note = ignored.length > 0 ? `; ${ignored.length} tensors of unbuilt layers ignored` : '';
      return finish({ initUsed: 'pretrained', source: `${r.path} (${r.origin}${r.sha256 ? `, sha256 ${r.sha256.slice(0, 12)}` : ''}${note})` });
    }

    // TF.js Layers folders.
    let dir: string | null = null;
    if (opts.weights !== undefined) {
      const p = resolveModelJsonPath(opts.weights);
      if (!existsSync(p) || !statSync(p).isFile()) {
        throw new WeightsError(
          `--weights ${resolve(opts.weights)}: no TF.js model.json there. ${name} needs the TF.js Layers model '${dw.folder}' ` +
            `(${dw.description}); put its model.json and group*-shard* files in one folder and pass that folder.`,
        );
      }
      dir = p;
    } else {
      const cands = tfjsWeightCandidates(dw.folder, opts.weightsDir, dw.shipped);
      dir = cands.find((c) => existsSync(join(c, 'model.json'))) ?? null;
      if (dir === null) {
        return finish({
          initUsed: 'random-init',
          source: randomSource,
          warning: loudWarning(name, `no model.json in ${cands.join(' or ')}; copy '${dw.folder}' (${dw.description}) there or pass --weights`),
        });
      }
    }
    const rep = loadTfjsLayersInto(module, dir);
    const missing = rep.missingFiles.length > 0 ? `; ${rep.missingFiles.length} unneeded shard(s) absent` : '';
    return finish({ initUsed: 'pretrained', source: `${rep.source} (${rep.loaded.length} tensors${missing})` });
  } catch (e) {
    module.dispose();
    throw e;
  }
}

/** Convenience for messages: the public URL of a hub backbone's weights. */
export function backboneWeightsUrl(name: BackboneName): string | null {
  const dw = BACKBONES[name].defaultWeights;
  return dw.kind === 'huggingface' ? hfUrl(dw.repo, dw.filename) : null;
}
