import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { runLayers, Sequential } from '../../nn/layers/sequential.js';
import { catChannels, doubleConv, downPool, upConvBnRelu } from '../../nn/layers/unetBlocks.js';
import { checkpoint, isRecordingGradients } from '../../nn/checkpoint.js';
import { Layer } from '../../nn/module.js';

/**
 * DRAEM's two networks (draem.md §2; VitjanZ/DRAEM model_unet.py), NHWC, with the official module
 * names so that a state dict of the released checkpoints maps one to one (e.g.
 * `encoder.block1.0.weight`, `decoder.up1.1.weight`, `decoder_segment.db_b.3.weight`,
 * `decoder_segment.fin_out.0.bias`). Conv weights travel in torch layout through
 * Module.loadTorchStateDict / torchStateDict.
 *
 * Blocks come from src/nn/layers/unetBlocks.ts: `doubleConv` = Sequential(Conv3×3, BN, ReLU,
 * Conv3×3, BN, ReLU) (parameters at 0,1,3,4), `downPool` = Sequential(MaxPool2d(2)),
 * `upConvBnRelu` = Sequential(Upsample ×2 bilinear align_corners=True, Conv3×3, BN, ReLU).
 */

/**
 * Gradient checkpointing (src/nn/checkpoint.ts) of the blocks while training: 'off' keeps every
 * activation for the backward pass (tfjs' default); 'block' keeps only the tensors between
 * blocks (`blockN`, `mpN`, `upN`, `dbN`, `fin_out`) and recomputes each block's inside during
 * the backward pass; 'layer' also cuts every double-conv block between its two conv-BN-ReLUs
 * (less memory, same extra compute: every forward runs once more). Gradients and BN running
 * statistics are those of 'off'. No effect outside gradient recording (eval, scoring).
 */
export const DRAEM_CHECKPOINTING = ['off', 'block', 'layer'] as const;
export type DraemCheckpointing = (typeof DRAEM_CHECKPOINTING)[number];

/**
 * One block `seq` under `mode`: its input is x, or pre(x) (the max-pool before an encoder block),
 * or concat([x, skip]) (the segmenter's decoder blocks); pooling and concatenation happen inside
 * the checkpointed piece, so only block outputs are kept between blocks. 'layer' splits the
 * 6-layer double-conv blocks into their two conv-BN-ReLU triples.
 */
function runBlock(mode: DraemCheckpointing, seq: Sequential<tf.Tensor4D>, x: tf.Tensor4D, opts: { pre?: Sequential<tf.Tensor4D>; skip?: tf.Tensor4D } = {}): tf.Tensor4D {
  const { pre, skip } = opts;
  if (mode === 'off' || !isRecordingGradients()) {
    const input = pre ? pre.call(x) : skip ? catChannels([x, skip]) : x;
    const y = seq.call(input);
    if (input !== x) input.dispose();
    return y;
  }
  const ls = seq.layers;
  const pieces = mode === 'layer' && ls.length === 6 ? [ls.slice(0, 3), ls.slice(3)] : [ls];
  const first = pieces[0];
  let y: tf.Tensor4D;
  if (skip) y = checkpoint((a: tf.Tensor4D, b: tf.Tensor4D) => runLayers(first, catChannels([a, b])), [x, skip], first);
  else if (pre) y = checkpoint((a: tf.Tensor4D) => runLayers([...pre.layers, ...first], a), [x], [pre, ...first]);
  else y = checkpoint((a: tf.Tensor4D) => runLayers(first, a), [x], first);
  for (const p of pieces.slice(1)) {
    const next = checkpoint((a: tf.Tensor4D) => runLayers(p, a), [y], p);
    y.dispose();
    y = next;
  }
  return y;
}

/** Parameter counts at the official widths (draem.md §2 and §7.1). */
export const DRAEM_RECONSTRUCTIVE_PARAMS = 69_048_579;
export const DRAEM_DISCRIMINATIVE_PARAMS = 28_374_146;

/** One conv output layer `fin_out = nn.Sequential(nn.Conv2d(w, out, 3, padding=1))`. */
function finOut(inChannels: number, outChannels: number): Sequential<tf.Tensor4D> {
  return new Sequential<tf.Tensor4D>([new Conv2d(inChannels, outChannels, 3, { padding: 1 })]);
}

function checkWidth(what: string, w: number): void {
  if (!Number.isInteger(w) || w < 1) throw new ConfigError(`DRAEM ${what} base width must be a positive integer, got ${w}`);
}

/** `EncoderReconstructive`: 5 double-conv blocks, 4 max-pools; w → 2w → 4w → 8w → 8w (no skips). */
export class EncoderReconstructive extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly block1: Sequential<tf.Tensor4D>;
  readonly mp1: Sequential<tf.Tensor4D>;
  readonly block2: Sequential<tf.Tensor4D>;
  readonly mp2: Sequential<tf.Tensor4D>;
  readonly block3: Sequential<tf.Tensor4D>;
  readonly mp3: Sequential<tf.Tensor4D>;
  readonly block4: Sequential<tf.Tensor4D>;
  readonly mp4: Sequential<tf.Tensor4D>;
  readonly block5: Sequential<tf.Tensor4D>;

  constructor(inChannels: number, w: number) {
    super();
    this.block1 = this.addModule('block1', doubleConv(inChannels, w));
    this.mp1 = this.addModule('mp1', downPool(2));
    this.block2 = this.addModule('block2', doubleConv(w, 2 * w));
    this.mp2 = this.addModule('mp2', downPool(2));
    this.block3 = this.addModule('block3', doubleConv(2 * w, 4 * w));
    this.mp3 = this.addModule('mp3', downPool(2));
    this.block4 = this.addModule('block4', doubleConv(4 * w, 8 * w));
    this.mp4 = this.addModule('mp4', downPool(2));
    this.block5 = this.addModule('block5', doubleConv(8 * w, 8 * w));
  }

  /** See DraemCheckpointing; set through ReconstructiveSubNetwork.setCheckpointing. */
  checkpointing: DraemCheckpointing = 'off';

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const run = (seq: Sequential<tf.Tensor4D>, t: tf.Tensor4D, pre?: Sequential<tf.Tensor4D>): tf.Tensor4D => runBlock(this.checkpointing, seq, t, { pre });
    return tf.tidy(() => {
      const b1 = run(this.block1, x);
      const b2 = run(this.block2, b1, this.mp1);
      const b3 = run(this.block3, b2, this.mp2);
      const b4 = run(this.block4, b3, this.mp3);
      return run(this.block5, b4, this.mp4);
    });
  }
}

/**
 * `DecoderReconstructive`: up1(8w→8w), db1(8w→8w→4w), up2(4w→4w), db2(4w→4w→2w), up3(2w→2w),
 * db3(2w→2w→w), up4(w→w), db4(w→w→w), fin_out Conv3×3 w→out with no activation (the
 * reconstruction is unbounded, draem.md §2).
 */
export class DecoderReconstructive extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly up1: Sequential<tf.Tensor4D>;
  readonly db1: Sequential<tf.Tensor4D>;
  readonly up2: Sequential<tf.Tensor4D>;
  readonly db2: Sequential<tf.Tensor4D>;
  readonly up3: Sequential<tf.Tensor4D>;
  readonly db3: Sequential<tf.Tensor4D>;
  readonly up4: Sequential<tf.Tensor4D>;
  readonly db4: Sequential<tf.Tensor4D>;
  readonly fin_out: Sequential<tf.Tensor4D>;

  constructor(w: number, outChannels: number) {
    super();
    this.up1 = this.addModule('up1', upConvBnRelu(8 * w, 8 * w));
    this.db1 = this.addModule('db1', doubleConv(8 * w, 4 * w, 8 * w));
    this.up2 = this.addModule('up2', upConvBnRelu(4 * w, 4 * w));
    this.db2 = this.addModule('db2', doubleConv(4 * w, 2 * w, 4 * w));
    this.up3 = this.addModule('up3', upConvBnRelu(2 * w, 2 * w));
    this.db3 = this.addModule('db3', doubleConv(2 * w, w, 2 * w));
    this.up4 = this.addModule('up4', upConvBnRelu(w, w));
    this.db4 = this.addModule('db4', doubleConv(w, w, w));
    this.fin_out = this.addModule('fin_out', finOut(w, outChannels));
  }

  /** See DraemCheckpointing; set through ReconstructiveSubNetwork.setCheckpointing. */
  checkpointing: DraemCheckpointing = 'off';

  forward(b5: tf.Tensor4D): tf.Tensor4D {
    const run = (seq: Sequential<tf.Tensor4D>, t: tf.Tensor4D): tf.Tensor4D => runBlock(this.checkpointing, seq, t);
    return tf.tidy(() => {
      const d1 = run(this.db1, run(this.up1, b5));
      const d2 = run(this.db2, run(this.up2, d1));
      const d3 = run(this.db3, run(this.up3, d2));
      const d4 = run(this.db4, run(this.up4, d3));
      return run(this.fin_out, d4);
    });
  }
}

/**
 * `ReconstructiveSubNetwork(in_channels=3, out_channels=3, base_width=128)`: a plain autoencoder
 * (no skip connections), 69,048,579 parameters at base width 128. Input [N,H,W,3] in [0,1] with
 * H, W multiples of 16.
 */
export class ReconstructiveSubNetwork extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly encoder: EncoderReconstructive;
  readonly decoder: DecoderReconstructive;

  constructor(
    readonly baseWidth = 128,
    readonly inChannels = 3,
    readonly outChannels = 3,
  ) {
    super();
    checkWidth('reconstructive', baseWidth);
    this.encoder = this.addModule('encoder', new EncoderReconstructive(inChannels, baseWidth));
    this.decoder = this.addModule('decoder', new DecoderReconstructive(baseWidth, outChannels));
  }

  /** Gradient checkpointing of the blocks while training (DraemCheckpointing). */
  setCheckpointing(mode: DraemCheckpointing): this {
    this.encoder.checkpointing = mode;
    this.decoder.checkpointing = mode;
    return this;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    checkSize('ReconstructiveSubNetwork', x, 16);
    return tf.tidy(() => this.decoder.call(this.encoder.call(x)));
  }
}

/** The six encoder activations b1..b6 the discriminative decoder's skips read. */
export type DiscriminativeFeatures = [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];

/** `EncoderDiscriminative`: 6 double-conv blocks, 5 max-pools; w, 2w, 4w, 8w, 8w, 8w. */
export class EncoderDiscriminative extends Layer<tf.Tensor4D, DiscriminativeFeatures> {
  readonly block1: Sequential<tf.Tensor4D>;
  readonly mp1: Sequential<tf.Tensor4D>;
  readonly block2: Sequential<tf.Tensor4D>;
  readonly mp2: Sequential<tf.Tensor4D>;
  readonly block3: Sequential<tf.Tensor4D>;
  readonly mp3: Sequential<tf.Tensor4D>;
  readonly block4: Sequential<tf.Tensor4D>;
  readonly mp4: Sequential<tf.Tensor4D>;
  readonly block5: Sequential<tf.Tensor4D>;
  readonly mp5: Sequential<tf.Tensor4D>;
  readonly block6: Sequential<tf.Tensor4D>;

  constructor(inChannels: number, w: number) {
    super();
    this.block1 = this.addModule('block1', doubleConv(inChannels, w));
    this.mp1 = this.addModule('mp1', downPool(2));
    this.block2 = this.addModule('block2', doubleConv(w, 2 * w));
    this.mp2 = this.addModule('mp2', downPool(2));
    this.block3 = this.addModule('block3', doubleConv(2 * w, 4 * w));
    this.mp3 = this.addModule('mp3', downPool(2));
    this.block4 = this.addModule('block4', doubleConv(4 * w, 8 * w));
    this.mp4 = this.addModule('mp4', downPool(2));
    this.block5 = this.addModule('block5', doubleConv(8 * w, 8 * w));
    this.mp5 = this.addModule('mp5', downPool(2));
    this.block6 = this.addModule('block6', doubleConv(8 * w, 8 * w));
  }

  /** See DraemCheckpointing; set through DiscriminativeSubNetwork.setCheckpointing. */
  checkpointing: DraemCheckpointing = 'off';

  forward(x: tf.Tensor4D): DiscriminativeFeatures {
    const run = (seq: Sequential<tf.Tensor4D>, t: tf.Tensor4D, pre?: Sequential<tf.Tensor4D>): tf.Tensor4D => runBlock(this.checkpointing, seq, t, { pre });
    return tf.tidy(() => {
      const b1 = run(this.block1, x);
      const b2 = run(this.block2, b1, this.mp1);
      const b3 = run(this.block3, b2, this.mp2);
      const b4 = run(this.block4, b3, this.mp3);
      const b5 = run(this.block5, b4, this.mp4);
      const b6 = run(this.block6, b5, this.mp5);
      return [b1, b2, b3, b4, b5, b6] as DiscriminativeFeatures;
    });
  }
}

/**
 * `DecoderDiscriminative`: at each stage up (×2, conv, BN, ReLU), concat [up, skip] (that order,
 * torch.cat((up, b), 1)), two CBRs; fin_out Conv3×3 w→2 (logits).
 */
export class DecoderDiscriminative extends Layer<DiscriminativeFeatures, tf.Tensor4D> {
  readonly up_b: Sequential<tf.Tensor4D>;
  readonly db_b: Sequential<tf.Tensor4D>;
  readonly up1: Sequential<tf.Tensor4D>;
  readonly db1: Sequential<tf.Tensor4D>;
  readonly up2: Sequential<tf.Tensor4D>;
  readonly db2: Sequential<tf.Tensor4D>;
  readonly up3: Sequential<tf.Tensor4D>;
  readonly db3: Sequential<tf.Tensor4D>;
  readonly up4: Sequential<tf.Tensor4D>;
  readonly db4: Sequential<tf.Tensor4D>;
  readonly fin_out: Sequential<tf.Tensor4D>;

  constructor(w: number, outChannels: number) {
    super();
    this.up_b = this.addModule('up_b', upConvBnRelu(8 * w, 8 * w));
    this.db_b = this.addModule('db_b', doubleConv(8 * w + 8 * w, 8 * w, 8 * w));
    this.up1 = this.addModule('up1', upConvBnRelu(8 * w, 4 * w));
    this.db1 = this.addModule('db1', doubleConv(4 * w + 8 * w, 4 * w, 4 * w));
    this.up2 = this.addModule('up2', upConvBnRelu(4 * w, 2 * w));
    this.db2 = this.addModule('db2', doubleConv(2 * w + 4 * w, 2 * w, 2 * w));
    this.up3 = this.addModule('up3', upConvBnRelu(2 * w, w));
    this.db3 = this.addModule('db3', doubleConv(w + 2 * w, w, w));
    this.up4 = this.addModule('up4', upConvBnRelu(w, w));
    this.db4 = this.addModule('db4', doubleConv(w + w, w, w));
    this.fin_out = this.addModule('fin_out', finOut(w, outChannels));
  }

  /** See DraemCheckpointing; set through DiscriminativeSubNetwork.setCheckpointing. */
  checkpointing: DraemCheckpointing = 'off';

  forward([b1, b2, b3, b4, b5, b6]: DiscriminativeFeatures): tf.Tensor4D {
    const run = (seq: Sequential<tf.Tensor4D>, t: tf.Tensor4D, skip?: tf.Tensor4D): tf.Tensor4D => runBlock(this.checkpointing, seq, t, { skip });
    return tf.tidy(() => {
      // torch.cat((up, b), 1): the concatenation happens inside the checkpointed db block.
      const db = run(this.db_b, run(this.up_b, b6), b5);
      const d1 = run(this.db1, run(this.up1, db), b4);
      const d2 = run(this.db2, run(this.up2, d1), b3);
      const d3 = run(this.db3, run(this.up3, d2), b2);
      const d4 = run(this.db4, run(this.up4, d3), b1);
      return run(this.fin_out, d4);
    });
  }
}

/**
 * `DiscriminativeSubNetwork(in_channels=6, out_channels=2, base_channels=64)`: U-Net segmenter,
 * 28,374,146 parameters at base width 64. Input = concat(reconstruction, augmented image) (the
 * official order, draem.md §2); output 2-channel logits [N,H,W,2]. H, W multiples of 32.
 */
export class DiscriminativeSubNetwork extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly encoder_segment: EncoderDiscriminative;
  readonly decoder_segment: DecoderDiscriminative;

  constructor(
    readonly baseWidth = 64,
    readonly inChannels = 6,
    readonly outChannels = 2,
  ) {
    super();
    checkWidth('discriminative', baseWidth);
    this.encoder_segment = this.addModule('encoder_segment', new EncoderDiscriminative(inChannels, baseWidth));
    this.decoder_segment = this.addModule('decoder_segment', new DecoderDiscriminative(baseWidth, outChannels));
  }

  /** Gradient checkpointing of the blocks while training (DraemCheckpointing). */
  setCheckpointing(mode: DraemCheckpointing): this {
    this.encoder_segment.checkpointing = mode;
    this.decoder_segment.checkpointing = mode;
    return this;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    checkSize('DiscriminativeSubNetwork', x, 32);
    return tf.tidy(() => {
      const feats = this.encoder_segment.call(x);
      return this.decoder_segment.call(feats);
    });
  }
}

/** Both pools must divide evenly (5 poolings in the segmenter), or skip concatenation fails. */
function checkSize(net: string, x: tf.Tensor4D, multiple: number): void {
  const [, h, w] = x.shape;
  if (h % multiple !== 0 || w % multiple !== 0) {
    throw new ConfigError(`${net}: input ${h}x${w} must be a multiple of ${multiple} on both sides (DRAEM pools ${Math.log2(multiple)} times); choose --image-size accordingly (e.g. 64, 96, 128, 256)`);
  }
}

/** Both networks of one DRAEM model. */
export interface DraemNetworks {
  reconstructive: ReconstructiveSubNetwork;
  discriminative: DiscriminativeSubNetwork;
}

/**
 * One DRAEM forward (train_DRAEM.py / test_DRAEM.py): I_r = Rec(I_a); logits =
 * Disc(concat(I_r, I_a)) — reconstruction FIRST; P = softmax over the 2 channels. No detach: in
 * training the segmentation loss back-propagates into Rec (draem.md §3).
 */
export function draemForward(nets: DraemNetworks, images: tf.Tensor4D): { reconstruction: tf.Tensor4D; logits: tf.Tensor4D; probs: tf.Tensor4D } {
  return tf.tidy(() => {
    const reconstruction = nets.reconstructive.call(images);
    const logits = nets.discriminative.call(catChannels([reconstruction, images]));
    const probs = tf.softmax(logits, 3) as tf.Tensor4D;
    return { reconstruction, logits, probs };
  });
}
