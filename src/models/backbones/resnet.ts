import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer, Module, runFrozen, type StateDict } from '../../nn/module.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { BatchNorm2d } from '../../nn/layers/norm.js';
import { ConvBnFold } from '../../nn/layers/fold.js';
import { Linear } from '../../nn/layers/linear.js';
import { Sequential, maxPool2d } from '../../nn/layers/sequential.js';
import { IMAGENET_NORMALIZATION, normalizeInput, pickFeatures, type FeatureExtractor, type Normalization } from './common.js';

/**
 * torchvision ResNet family (resnet18, resnet50, wide_resnet50_2) over NHWC tensors, with
 * torchvision's parameter names (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc, ...) so
 * torchvision checkpoints and timm's `*.tv_in1k` safetensors load by name: timm's ResNet uses the
 * very same names (conv1/bn1/layerN.i.{conv,bn}{1,2,3}/downsample.{0,1}/fc; its activation, pool
 * and drop modules hold no parameters) and its tv_in1k files are torchvision's V1 tensors.
 *
 * Build options stop the network early: PatchCore runs stem..layer3 only, so layer4 and fc are
 * then not built (no memory, no init). `loadPartial` loads a full checkpoint into such a truncated
 * network, ignoring exactly the keys of the stages that were not built.
 */

export type ResNetArch = 'resnet18' | 'resnet50' | 'wide_resnet50_2';
export type ResNetStage = 'layer1' | 'layer2' | 'layer3' | 'layer4';
export const RESNET_STAGES: readonly ResNetStage[] = ['layer1', 'layer2', 'layer3', 'layer4'];

export interface ResNetConfig {
  block: 'basic' | 'bottleneck';
  layers: readonly [number, number, number, number];
  /** torchvision `width_per_group` (64; 128 for wide_resnet50_2). */
  widthPerGroup: number;
}

export const RESNET_CONFIGS: Readonly<Record<ResNetArch, ResNetConfig>> = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2], widthPerGroup: 64 },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3], widthPerGroup: 64 },
  wide_resnet50_2: { block: 'bottleneck', layers: [3, 4, 6, 3], widthPerGroup: 128 },
};

export interface ResNetOptions {
  /**
   * Last part built: 'layer1'..'layer4', or 'fc' (default) for the whole torchvision model
   * (avgpool + fc), so a full checkpoint loads strictly.
   */
  upTo?: ResNetStage | 'fc';
  /** Maps `extract` returns; default every built stage. */
  featureLayers?: readonly ResNetStage[];
  numClasses?: number;
}

function conv3x3(inC: number, outC: number, stride = 1): Conv2d {
  return new Conv2d(inC, outC, 3, { stride, padding: 1, bias: false, init: 'kaiming_out' });
}

function conv1x1(inC: number, outC: number, stride = 1): Conv2d {
  return new Conv2d(inC, outC, 1, { stride, padding: 0, bias: false, init: 'kaiming_out' });
}

type Block = Layer<tf.Tensor4D, tf.Tensor4D>;

/** Fold of a torchvision downsample Sequential(conv1x1, BatchNorm2d). */
function downsampleFold(down: Sequential<tf.Tensor4D> | null): ConvBnFold | null {
  if (!down) return null;
  const [conv, bn] = down.layers;
  return conv instanceof Conv2d && bn instanceof BatchNorm2d && down.layers.length === 2 ? new ConvBnFold(conv, bn) : null;
}

/** The block's residual branch input: downsample(x) (folded in eval) or x itself. */
function shortcut(x: tf.Tensor4D, down: Sequential<tf.Tensor4D> | null, fold: ConvBnFold | null): tf.Tensor4D {
  if (!down) return x;
  return fold ? fold.call(x, () => down.call(x)) : down.call(x);
}

/** torchvision BasicBlock (expansion 1). */
export class BasicBlock extends Layer<tf.Tensor4D, tf.Tensor4D> {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential<tf.Tensor4D> | null;
  /** Eval mode: conv+BN(+ReLU) pairs as single fused convs (src/nn/layers/fold.ts); training: the modules. */
  private readonly folds: [ConvBnFold, ConvBnFold, ConvBnFold | null];

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential<tf.Tensor4D> | null) {
    super();
    this.conv1 = this.addModule('conv1', conv3x3(inplanes, planes, stride));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(planes));
    this.conv2 = this.addModule('conv2', conv3x3(planes, planes));
    this.bn2 = this.addModule('bn2', new BatchNorm2d(planes));
    this.downsample = downsample ? this.addModule('downsample', downsample) : null;
    this.folds = [new ConvBnFold(this.conv1, this.bn1, 'relu'), new ConvBnFold(this.conv2, this.bn2), downsampleFold(this.downsample)];
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [f1, f2, fd] = this.folds;
      let out = f1.call(x);
      out = f2.call(out);
      const identity = shortcut(x, this.downsample, fd);
      return tf.relu(tf.add(out, identity)) as tf.Tensor4D;
    });
  }

  override dispose(): void {
    for (const f of this.folds) f?.dispose();
    super.dispose();
  }
}

/** torchvision Bottleneck (ResNet v1.5: stride on the 3x3 conv), expansion 4. */
export class Bottleneck extends Layer<tf.Tensor4D, tf.Tensor4D> {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Sequential<tf.Tensor4D> | null;
  /** Eval mode: conv+BN(+ReLU) pairs as single fused convs (src/nn/layers/fold.ts); training: the modules. */
  private readonly folds: [ConvBnFold, ConvBnFold, ConvBnFold, ConvBnFold | null];

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential<tf.Tensor4D> | null, widthPerGroup: number) {
    super();
    const width = Math.floor(planes * (widthPerGroup / 64));
    this.conv1 = this.addModule('conv1', conv1x1(inplanes, width));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(width));
    this.conv2 = this.addModule('conv2', conv3x3(width, width, stride));
    this.bn2 = this.addModule('bn2', new BatchNorm2d(width));
    this.conv3 = this.addModule('conv3', conv1x1(width, planes * Bottleneck.expansion));
    this.bn3 = this.addModule('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.downsample = downsample ? this.addModule('downsample', downsample) : null;
    this.folds = [
      new ConvBnFold(this.conv1, this.bn1, 'relu'),
      new ConvBnFold(this.conv2, this.bn2, 'relu'),
      new ConvBnFold(this.conv3, this.bn3),
      downsampleFold(this.downsample),
    ];
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [f1, f2, f3, fd] = this.folds;
      let out = f1.call(x);
      out = f2.call(out);
      out = f3.call(out);
      const identity = shortcut(x, this.downsample, fd);
      return tf.relu(tf.add(out, identity)) as tf.Tensor4D;
    });
  }

  override dispose(): void {
    for (const f of this.folds) f?.dispose();
    super.dispose();
  }
}

export type ResNetFeatures = Partial<Record<ResNetStage, tf.Tensor4D>>;

export class ResNet extends Module implements FeatureExtractor {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: Sequential<tf.Tensor4D>[] = [];
  readonly fc: Linear | null = null;
  /** Stages built, in order. */
  readonly builtStages: readonly ResNetStage[];
  readonly featureLayers: readonly ResNetStage[];
  readonly strides: Readonly<Record<string, number>>;
  readonly channels: Readonly<Record<string, number>>;
  readonly normalization: Normalization = IMAGENET_NORMALIZATION;
  readonly config: ResNetConfig;
  /** conv1 + bn1 + ReLU, folded in eval mode (src/nn/layers/fold.ts). */
  private readonly stemFold: ConvBnFold;

  constructor(
    readonly name: ResNetArch,
    opts: ResNetOptions = {},
  ) {
    super();
    this.config = RESNET_CONFIGS[name];
    if (!this.config) throw new ConfigError(`unknown ResNet architecture '${name}' (have ${Object.keys(RESNET_CONFIGS).join(', ')})`);
    const upTo = opts.upTo ?? 'fc';
    const nStages = upTo === 'fc' ? 4 : RESNET_STAGES.indexOf(upTo) + 1;
    if (nStages <= 0) throw new ConfigError(`ResNet upTo '${upTo}': expected one of ${[...RESNET_STAGES, 'fc'].join(', ')}`);
    const { block, layers, widthPerGroup } = this.config;
    const expansion = block === 'basic' ? BasicBlock.expansion : Bottleneck.expansion;

    this.conv1 = this.addModule('conv1', new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false, init: 'kaiming_out' }));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(64));
    this.stemFold = new ConvBnFold(this.conv1, this.bn1, 'relu');
    let inplanes = 64;
    const strides: Record<string, number> = {};
    const channels: Record<string, number> = {};
    const built: ResNetStage[] = [];
    for (let s = 0; s < nStages; s++) {
      const planes = 64 * 2 ** s;
      const stride = s === 0 ? 1 : 2;
      const blocks: Block[] = [];
      for (let b = 0; b < layers[s]; b++) {
        const st = b === 0 ? stride : 1;
        let down: Sequential<tf.Tensor4D> | null = null;
        if (b === 0 && (stride !== 1 || inplanes !== planes * expansion)) {
          down = new Sequential<tf.Tensor4D>([conv1x1(inplanes, planes * expansion, stride), new BatchNorm2d(planes * expansion)]);
        }
        blocks.push(block === 'basic' ? new BasicBlock(inplanes, planes, st, down) : new Bottleneck(inplanes, planes, st, down, widthPerGroup));
        inplanes = planes * expansion;
      }
      const stage = RESNET_STAGES[s];
      this.stages.push(this.addModule(stage, new Sequential<tf.Tensor4D>(blocks)));
      strides[stage] = 4 * 2 ** s;
      channels[stage] = planes * expansion;
      built.push(stage);
    }
    if (upTo === 'fc') this.fc = this.addModule('fc', new Linear(inplanes, opts.numClasses ?? 1000));
    this.builtStages = built;
    this.strides = strides;
    this.channels = channels;
    const feats = opts.featureLayers ?? built;
    for (const f of feats) {
      if (!built.includes(f)) throw new ConfigError(`${name}: feature layer '${f}' is not built (built: ${built.join(', ')}); raise upTo`);
    }
    this.featureLayers = [...feats];
  }

  get module(): Module {
    return this;
  }

  override dispose(): void {
    this.stemFold.dispose();
    super.dispose();
  }

  /** Stem + built stages on an already-normalised NHWC batch: every built stage's output. */
  forward(x: tf.Tensor4D): ResNetFeatures {
    return tf.tidy(() => {
      const out: ResNetFeatures = {};
      let h = this.stemFold.call(x);
      h = maxPool2d(h, 3, 2, 1);
      this.stages.forEach((stage, i) => {
        h = stage.call(h);
        out[this.builtStages[i]] = h;
      });
      return out as Record<string, tf.Tensor4D>;
    }) as ResNetFeatures;
  }

  /** Frozen (Module.freeze): runs entirely off the gradient tape. */
  extract(x: tf.Tensor4D, layers: readonly string[] = this.featureLayers): Record<string, tf.Tensor4D> {
    return runFrozen(this, () => {
      const xn = normalizeInput(x, this.normalization);
      try {
        return pickFeatures(this.forward(xn) as Record<string, tf.Tensor4D>, layers, this.name);
      } finally {
        xn.dispose();
      }
    });
  }

  /** Global-average-pooled output of the last built stage, [N, C] (torchvision's `flatten(avgpool(x))`). */
  pooled(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const f = this.forward(x);
      const last = f[this.builtStages[this.builtStages.length - 1]] as tf.Tensor4D;
      return tf.mean(last, [1, 2]) as tf.Tensor2D;
    });
  }

  /** Class logits [N, numClasses] of a normalised batch; needs the full model (upTo 'fc'). */
  logits(x: tf.Tensor4D): tf.Tensor2D {
    if (!this.fc) throw new ConfigError(`${this.name}: logits need the full model (build with upTo 'fc')`);
    const fc = this.fc;
    return tf.tidy(() => fc.call(this.pooled(x)) as tf.Tensor2D);
  }

  /**
   * Strict load of a PyTorch-layout checkpoint (torchvision / timm tv_in1k names), after
   * `adaptTorchResNetCheckpoint`. Every key must match a built parameter and vice versa.
   */
  loadTorchCheckpoint(dict: StateDict, opts: { source?: string } = {}): void {
    const adapted = adaptTorchResNetCheckpoint(dict, this);
    try {
      this.loadTorchStateDict(adapted.dict, { strict: true, source: opts.source });
    } finally {
      for (const t of adapted.created) t.dispose();
    }
  }

  /**
   * Like `loadTorchCheckpoint`, but keys of ResNet parts this instance did not build (`layer4.*`,
   * `fc.*` when built up to layer3, and so on) are ignored. Everything else stays strict: a key
   * missing from a built stage, an unknown key or a shape mismatch throws WeightsError.
   */
  loadPartial(dict: StateDict, opts: { source?: string } = {}): { ignored: string[] } {
    const builtTop = new Set(this.namedChildren().map(([n]) => n));
    const resnetTop = new Set<string>([...RESNET_STAGES, 'fc', 'conv1', 'bn1']);
    const kept: StateDict = new Map();
    const ignored: string[] = [];
    for (const [k, t] of dict) {
      const top = stripModulePrefix(k).split('.')[0];
      if (resnetTop.has(top) && !builtTop.has(top)) ignored.push(k);
      else kept.set(k, t);
    }
    this.loadTorchCheckpoint(kept, opts);
    return { ignored };
  }
}

function stripModulePrefix(k: string): string {
  return k.startsWith('module.') ? k.slice('module.'.length) : k;
}

/**
 * Makes torchvision/timm ResNet checkpoints match our names: strips DataParallel's `module.`
 * prefix and supplies `num_batches_tracked` = 0 where a checkpoint predates it (torchvision's
 * original resnet18/50 files), as PyTorch's BatchNorm does when loading them. Returns the new
 * dict (sharing the input tensors) and the tensors it created, for the caller to dispose.
 */
export function adaptTorchResNetCheckpoint(dict: StateDict, model: Module): { dict: StateDict; created: tf.Tensor[] } {
  const out: StateDict = new Map();
  const created: tf.Tensor[] = [];
  for (const [k, t] of dict) out.set(stripModulePrefix(k), t);
  for (const [k] of model.namedEntries()) {
    if (k.endsWith('.num_batches_tracked') && !out.has(k) && out.has(k.replace(/num_batches_tracked$/, 'running_mean'))) {
      const z = tf.scalar(0);
      created.push(z);
      out.set(k, z);
    }
  }
  return { dict: out, created };
}

export function resnet18(opts: ResNetOptions = {}): ResNet {
  return new ResNet('resnet18', opts);
}

export function resnet50(opts: ResNetOptions = {}): ResNet {
  return new ResNet('resnet50', opts);
}

/** torchvision wide_resnet50_2: Bottleneck [3, 4, 6, 3] with width_per_group 128. */
export function wideResnet50_2(opts: ResNetOptions = {}): ResNet {
  return new ResNet('wide_resnet50_2', opts);
}
