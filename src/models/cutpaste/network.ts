import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { BatchNorm1d } from '../../nn/layers/batchnorm1d.js';
import { Linear } from '../../nn/layers/linear.js';
import { Fn, Sequential } from '../../nn/layers/sequential.js';
import { Layer, Module } from '../../nn/module.js';
import { IMAGENET_NORMALIZATION, normalizeInput } from '../backbones/common.js';
import { ResNet } from '../backbones/resnet.js';

/** What one forward pass gives: the 512-d pooled encoder feature f(x) (the GDE's input) and the class logits g(f(x)). */
export interface CutPasteOutput {
  embeds: tf.Tensor2D;
  logits: tf.Tensor2D;
}

/** Pooled feature plus the spatial map of one stage (for the anomaly map). */
export interface CutPasteFeatures {
  embeds: tf.Tensor2D;
  spatial: tf.Tensor4D;
}

/** Parameters of the projection head + classifier (cutpaste.md §2): 2-layer, 3-way = 593,667. */
export function cutpasteHeadParams(headLayers: number, classes: number): number {
  let n = 0;
  let inF = 512;
  for (const out of [...Array<number>(headLayers).fill(512), 128]) {
    n += inF * out + out + 2 * out;
    inF = out;
  }
  return n + inF * classes + classes;
}

/**
 * CutPaste's network (cutpaste.md §2): torchvision ResNet-18 without its classifier, f(x) = the
 * 512-d global-average-pooled layer4 output; head = headLayers × [Linear→512, BatchNorm1d, ReLU]
 * then [Linear→128, BatchNorm1d, ReLU] (Runinho's `head_layers = [512]·k + [128]`), then the
 * classifier Linear 128→classes. Parameter names are Runinho's ProjectionNet's (`resnet18.*`,
 * `head.<i>.*`, `out.*`), so its checkpoints load by name. Inputs are [0, 1] RGB; the ImageNet
 * normalisation (Runinho's transform) happens inside.
 */
export class CutPasteNet extends Module {
  readonly resnet18: ResNet;
  readonly head: Sequential<tf.Tensor>;
  readonly out: Linear;

  constructor(
    backbone: ResNet,
    readonly headLayers: number,
    readonly classes: number,
  ) {
    super();
    if (backbone.name !== 'resnet18' || backbone.fc !== null || !backbone.builtStages.includes('layer4')) {
      throw new ConfigError(`CutPasteNet: needs a torchvision resnet18 built up to layer4 without fc, got ${backbone.name} up to ${backbone.builtStages.at(-1)}`);
    }
    if (!Number.isInteger(headLayers) || headLayers < 0) throw new ConfigError(`CutPaste: headLayers must be a non-negative integer, got ${headLayers}`);
    if (!Number.isInteger(classes) || classes < 2) throw new ConfigError(`CutPaste: needs at least 2 classes, got ${classes}`);
    this.resnet18 = this.addModule('resnet18', backbone);
    const layers: Layer<tf.Tensor, tf.Tensor>[] = [];
    let inF = 512;
    for (const outF of [...Array<number>(headLayers).fill(512), 128]) {
      layers.push(new Linear(inF, outF), new BatchNorm1d(outF), new Fn<tf.Tensor>((t) => tf.relu(t), 'ReLU'));
      inF = outF;
    }
    this.head = this.addModule('head', new Sequential<tf.Tensor>(layers));
    this.out = this.addModule('out', new Linear(inF, classes));
  }

  /** f(x): pooled layer4 feature and the requested stage's spatial output of a [0, 1] batch. */
  features(x01: tf.Tensor4D, spatialLayer: 'layer3' | 'layer4' = 'layer4'): CutPasteFeatures {
    return tf.tidy(() => {
      const x = normalizeInput(x01, IMAGENET_NORMALIZATION);
      const f = this.resnet18.forward(x);
      const l4 = f.layer4 as tf.Tensor4D;
      return { embeds: tf.mean(l4, [1, 2]) as tf.Tensor2D, spatial: f[spatialLayer] as tf.Tensor4D };
    });
  }

  /** Runinho's ProjectionNet.forward: (embeds, logits). */
  forward(x01: tf.Tensor4D): CutPasteOutput {
    return tf.tidy(() => {
      const x = normalizeInput(x01, IMAGENET_NORMALIZATION);
      const embeds = this.resnet18.pooled(x);
      const logits = this.out.call(this.head.call(embeds)) as tf.Tensor2D;
      return { embeds, logits };
    });
  }
}
