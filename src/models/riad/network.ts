import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { Fn, Sequential } from '../../nn/layers/sequential.js';
import { UNetDownBlock, UNetUpBlock } from '../../nn/layers/unetBlocks.js';
import { Layer } from '../../nn/module.js';

/**
 * RIAD's inpainting U-Net (riad.md §2; taikiinoue45/RIAD riad/models/unet.py, identical to
 * plutoyuxie's). Module names follow unet.py (down1..down5, up1..up4, conv_final.0) so a PyTorch
 * state dict of the reference maps 1:1 onto ours via loadTorchStateDict.
 *
 *   down1: CBR(3→w, 3×3 s1 p1) + CBR(w→w)                      H
 *   down2..down5: CBR(·, 4×4 s2 p1) + CBR(3×3); widths 2w, 4w, 8w, 8w   H/2 … H/16
 *   up1..up4: ConvTranspose 4×4 s2 p1 → concat skip → CBR(2·out→out) → CBR(out→out)
 *   conv_final: Conv3×3 (w→3) → Tanh
 *
 * With width w = 64 (the reference) this has exactly 28,805,699 parameters (riad.md §2, §7.1).
 * `width` < 64 is the documented cpu-profile reduction (README.md in this folder); the channel
 * pattern (×1, ×2, ×4, ×8, ×8) is kept.
 */
export class RiadUNet extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly down1: UNetDownBlock;
  readonly down2: UNetDownBlock;
  readonly down3: UNetDownBlock;
  readonly down4: UNetDownBlock;
  readonly down5: UNetDownBlock;
  readonly up1: UNetUpBlock;
  readonly up2: UNetUpBlock;
  readonly up3: UNetUpBlock;
  readonly up4: UNetUpBlock;
  readonly convFinal: Sequential<tf.Tensor4D>;

  constructor(
    readonly width = 64,
    readonly inChannels = 3,
  ) {
    super();
    if (!Number.isInteger(width) || width < 1) throw new ConfigError(`RIAD U-Net: width must be a positive integer, got ${width}`);
    const [c1, c2, c3, c4] = [width, 2 * width, 4 * width, 8 * width];
    this.down1 = this.addModule('down1', new UNetDownBlock(inChannels, c1, 3, 1, 1));
    this.down2 = this.addModule('down2', new UNetDownBlock(c1, c2, 4, 2, 1));
    this.down3 = this.addModule('down3', new UNetDownBlock(c2, c3, 4, 2, 1));
    this.down4 = this.addModule('down4', new UNetDownBlock(c3, c4, 4, 2, 1));
    this.down5 = this.addModule('down5', new UNetDownBlock(c4, c4, 4, 2, 1));
    this.up1 = this.addModule('up1', new UNetUpBlock(c4, c4));
    this.up2 = this.addModule('up2', new UNetUpBlock(c4, c3));
    this.up3 = this.addModule('up3', new UNetUpBlock(c3, c2));
    this.up4 = this.addModule('up4', new UNetUpBlock(c2, c1));
    this.convFinal = this.addModule(
      'conv_final',
      new Sequential<tf.Tensor4D>([new Conv2d(c1, inChannels, 3, { padding: 1 }), new Fn<tf.Tensor4D>((x) => tf.tanh(x), 'Tanh')]),
    );
  }

  /** x: [N, H, W, 3] in [−1, 1], H and W multiples of 16 (four stride-2 stages). Output in [−1, 1]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const [, h, w] = x.shape;
    if (h % 16 !== 0 || w % 16 !== 0) throw new ConfigError(`RIAD U-Net: input ${h}x${w} must be a multiple of 16 on both sides`);
    return tf.tidy(() => {
      const x1 = this.down1.call(x);
      const x2 = this.down2.call(x1);
      const x3 = this.down3.call(x2);
      const x4 = this.down4.call(x3);
      const x5 = this.down5.call(x4);
      let y = this.up1.call([x5, x4]);
      y = this.up2.call([y, x3]);
      y = this.up3.call([y, x2]);
      y = this.up4.call([y, x1]);
      return this.convFinal.call(y);
    });
  }
}

/** Parameter count of RiadUNet(width) in closed form (for docs/tests without building it). */
export function riadUNetParams(width = 64, inChannels = 3): number {
  const conv = (i: number, o: number, k: number) => i * o * k * k + o;
  const bn = (c: number) => 2 * c;
  const down = (i: number, o: number, k: number) => conv(i, o, k) + bn(o) + conv(o, o, 3) + bn(o);
  const up = (i: number, o: number) => conv(i, o, 4) + conv(2 * o, o, 3) + bn(o) + conv(o, o, 3) + bn(o);
  const [c1, c2, c3, c4] = [width, 2 * width, 4 * width, 8 * width];
  return (
    down(inChannels, c1, 3) + down(c1, c2, 4) + down(c2, c3, 4) + down(c3, c4, 4) + down(c4, c4, 4) +
    up(c4, c4) + up(c4, c3) + up(c3, c2) + up(c2, c1) + conv(c1, inChannels, 3)
  );
}
