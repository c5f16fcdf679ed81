import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Module, Layer } from '../../nn/module.js';
import { Conv1d, Conv2d } from '../../nn/layers/conv.js';
import { GroupNorm } from '../../nn/layers/norm.js';
import { Linear } from '../../nn/layers/linear.js';
import { SiLU } from '../../nn/layers/activations.js';
import { Dropout } from '../../nn/layers/dropout.js';
import { Sequential, avgPool2d } from '../../nn/layers/sequential.js';
import { scaledDotProductAttention } from '../../nn/layers/attention.js';
import { withModuleScope } from '../../nn/scope.js';
import { nearestUpsample } from '../../nn/layers/unetBlocks.js';
import { timestepEmbedding, type EmbeddingOrder } from './timestepEmbedding.js';
import { checkUNetInput, planUNet, type AttentionPlan, type BlockPlan, type DiffusionUNetConfig, type ResBlockPlan, type UNetPlan } from './unetPlan.js';

/**
 * The guided-diffusion-style UNet of DDAD (ddad.md §2) and DiffusionAD (diffusionad.md §2.1), NHWC,
 * with the reference's state-dict names (DDAD unet.py `UNetModel`):
 *   time_embedding.{1,3}                         Linear base→4·base, SiLU, Linear (index 0 = sinusoid)
 *   down.0.0                                     stem conv3×3
 *   down.i.0.{in_layers.{0,2},embed_layers.1,out_layers.{0,3},skip_connection}   ResBlock
 *   down.i.1.{norm,to_qkv,proj_out}              AttentionBlock (Conv1d 1×1 projections)
 *   middle.{0,1,2}, up.i.{0,1,2}, out.{0,2}
 * Zero-initialised as the reference: each ResBlock's last conv, each attention proj_out and the
 * output conv, so an untrained model predicts ε̂ = 0 exactly (ddad.md §7.6).
 */

/**
 * guided-diffusion's GroupNorm32 (nn.GroupNorm computed in float32). Its own class name matters
 * only to the cost counter: ptflops does not hook subclasses, so the paper's GMAC leaves it out.
 */
export class GroupNorm32 extends GroupNorm {}

function zeroInit(m: Module): void {
  for (const [, v] of m.namedParameters()) v.assign(tf.zerosLike(v));
}

const silu = (x: tf.Tensor): tf.Tensor => tf.tidy(() => tf.mul(x, tf.sigmoid(x)));

/** A layer that only exists for its state-dict index (the reference's PositionalEmbedding, SiLU in a Sequential). */
class Sinusoid extends Layer<tf.Tensor1D, tf.Tensor2D> {
  constructor(
    readonly dim: number,
    readonly order: EmbeddingOrder,
  ) {
    super();
  }

  forward(t: tf.Tensor1D): tf.Tensor2D {
    return timestepEmbedding(t, this.dim, { order: this.order });
  }
}

/** `time_embedding` = Sequential(PositionalEmbedding(base), Linear(base, 4·base), SiLU, Linear(4·base, 4·base)). */
export class TimeEmbedding extends Module {
  readonly sinusoid: Sinusoid;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, embedDim: number, order: EmbeddingOrder) {
    super();
    this.sinusoid = this.addModule('0', new Sinusoid(dim, order));
    this.fc1 = this.addModule('1', new Linear(dim, embedDim));
    this.addModule('2', new SiLU());
    this.fc2 = this.addModule('3', new Linear(embedDim, embedDim));
  }

  call(t: tf.Tensor1D): tf.Tensor2D {
    return withModuleScope(this.path || 'TimeEmbedding', 'TimeEmbedding', () => tf.tidy(() => {
      const e = this.sinusoid.call(t);
      return this.fc2.call(silu(this.fc1.call(e))) as tf.Tensor2D;
    }));
  }
}

/**
 * ResBlock (diffusionad.md §2.1): GN → SiLU → [resample] → conv3×3; + Linear(SiLU(temb)) over H,W;
 * GN → SiLU → Dropout → conv3×3 (zero-init); skip = identity or conv1×1, resampled like the
 * residual path (BigGAN up/down: 2×2 average pool / nearest ×2 after the first GN + SiLU).
 */
export class ResBlock extends Module {
  readonly inNorm: GroupNorm32;
  readonly inConv: Conv2d;
  readonly embed: Linear;
  readonly outNorm: GroupNorm32;
  readonly dropout: Dropout;
  readonly outConv: Conv2d;
  readonly skip: Conv2d | null;

  constructor(
    readonly plan: ResBlockPlan,
    timeEmbedDim: number,
    groups: number,
    dropout: number,
  ) {
    super();
    const { inChannels: i, outChannels: o } = plan;
    this.inNorm = new GroupNorm32(groups, i);
    this.inConv = new Conv2d(i, o, 3, { padding: 1 });
    this.addModule('in_layers', new Sequential<tf.Tensor>([this.inNorm as unknown as Layer<tf.Tensor, tf.Tensor>, new SiLU(), this.inConv as unknown as Layer<tf.Tensor, tf.Tensor>]));
    this.embed = new Linear(timeEmbedDim, o);
    this.addModule('embed_layers', new Sequential<tf.Tensor>([new SiLU(), this.embed]));
    this.outNorm = new GroupNorm32(groups, o);
    this.dropout = new Dropout(dropout);
    this.outConv = new Conv2d(o, o, 3, { padding: 1 });
    zeroInit(this.outConv);
    this.addModule('out_layers', new Sequential<tf.Tensor>([this.outNorm as unknown as Layer<tf.Tensor, tf.Tensor>, new SiLU(), this.dropout, this.outConv as unknown as Layer<tf.Tensor, tf.Tensor>]));
    this.skip = i === o ? null : this.addModule('skip_connection', new Conv2d(i, o, 1));
  }

  private resample(x: tf.Tensor4D): tf.Tensor4D {
    if (this.plan.resample === 'down') return avgPool2d(x, 2, 2);
    if (this.plan.resample === 'up') {
      // F.interpolate(scale_factor=2, mode='nearest'). Being functional in the reference,
      // ptflops' module hooks do not charge it, nor does our counter (no resize kernel runs).
      return nearestUpsample(x, 2);
    }
    return x;
  }

  call(x: tf.Tensor4D, temb: tf.Tensor2D): tf.Tensor4D {
    return withModuleScope(this.path || 'ResBlock', 'ResBlock', () => tf.tidy(() => {
      let h = silu(this.inNorm.call(x)) as tf.Tensor4D;
      h = this.inConv.call(this.resample(h));
      const e = this.embed.call(silu(temb));
      h = tf.add(h, tf.reshape(e, [x.shape[0], 1, 1, this.plan.outChannels]));
      h = this.outConv.call(this.dropout.call(silu(this.outNorm.call(h))) as tf.Tensor4D);
      const xs = this.resample(x);
      return tf.add(this.skip ? this.skip.call(xs) : xs, h) as tf.Tensor4D;
    }));
  }
}

/**
 * AttentionBlock (diffusionad.md §2.1): GN → Conv1d 1×1 C→3C → softmax attention over all H·W
 * positions per head → Conv1d 1×1 C→C (zero-init) → + x. The qkv channels are laid out per head
 * as [q|k|v] (QKVAttention: reshape to (B·heads, 3·d, T) then split), and the reference scales q
 * and k each by d^(−1/4), i.e. the logits by d^(−1/2), as here.
 */
export class AttentionBlock extends Module {
  readonly norm: GroupNorm32;
  readonly toQkv: Conv1d;
  readonly projOut: Conv1d;

  constructor(
    readonly plan: AttentionPlan,
    groups: number,
  ) {
    super();
    const c = plan.channels;
    this.norm = this.addModule('norm', new GroupNorm32(groups, c));
    this.toQkv = this.addModule('to_qkv', new Conv1d(c, 3 * c, 1));
    this.projOut = this.addModule('proj_out', new Conv1d(c, c, 1));
    zeroInit(this.projOut);
  }

  call(x: tf.Tensor4D): tf.Tensor4D {
    return withModuleScope(this.path || 'AttentionBlock', 'AttentionBlock', () => tf.tidy(() => {
      const [b, hh, ww, c] = x.shape;
      const n = hh * ww;
      const heads = this.plan.heads;
      const d = c / heads;
      const qkv = this.toQkv.call(tf.reshape(this.norm.call(x), [b, n, c]) as tf.Tensor3D);
      const [q, k, v] = tf.unstack(tf.transpose(tf.reshape(qkv, [b, n, heads, 3, d]), [3, 0, 2, 1, 4]), 0); // each [B, heads, N, d]
      const a = scaledDotProductAttention(q, k, v, { scale: 1 / Math.sqrt(d) });
      const h = this.projOut.call(tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [b, n, c]) as tf.Tensor3D);
      return tf.add(x, tf.reshape(h, [b, hh, ww, c])) as tf.Tensor4D;
    }));
  }
}

type Block = ResBlock | AttentionBlock | Conv2d;

/** TimestepEmbedSequential: children '0', '1', ...; ResBlocks get the time embedding. */
export class TimestepSequential extends Module {
  readonly blocks: Block[];

  constructor(plans: readonly BlockPlan[], c: UNetPlan['config']) {
    super();
    this.blocks = plans.map((p, i) => this.addModule(String(i), makeBlock(p, c)));
  }

  call(x: tf.Tensor4D, temb: tf.Tensor2D): tf.Tensor4D {
    let h = x;
    for (const b of this.blocks) {
      const next = b instanceof ResBlock ? b.call(h, temb) : b.call(h);
      if (h !== x) h.dispose();
      h = next;
    }
    return h;
  }
}

function makeBlock(p: BlockPlan, c: UNetPlan['config']): Block {
  switch (p.kind) {
    case 'stem':
      return new Conv2d(p.inChannels, p.outChannels, 3, { padding: 1 });
    case 'res':
      return new ResBlock(p, c.timeEmbedDim, c.normGroups, c.dropout);
    case 'attn':
      return new AttentionBlock(p, c.normGroups);
  }
}

/** A Module container whose children are '0', '1', ... (nn.ModuleList). */
class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.addModule(String(i), m));
  }
}

/** ε_θ(x_t, t): [B, H, W, inChannels] and B timesteps → [B, H, W, outChannels]. */
export class DiffusionUNet extends Module {
  readonly plan: UNetPlan;
  readonly timeEmbedding: TimeEmbedding;
  readonly down: ModuleList<TimestepSequential>;
  readonly middle: TimestepSequential;
  readonly up: ModuleList<TimestepSequential>;
  readonly outNorm: GroupNorm32;
  readonly outConv: Conv2d;

  constructor(config: DiffusionUNetConfig) {
    super();
    this.plan = planUNet(config);
    const c = this.plan.config;
    this.timeEmbedding = this.addModule('time_embedding', new TimeEmbedding(c.baseChannels, c.timeEmbedDim, c.embeddingOrder));
    this.down = this.addModule('down', new ModuleList(this.plan.down.map((s) => new TimestepSequential(s, c))));
    this.middle = this.addModule('middle', new TimestepSequential(this.plan.middle, c));
    this.up = this.addModule('up', new ModuleList(this.plan.up.map((s) => new TimestepSequential(s, c))));
    this.outNorm = new GroupNorm32(c.normGroups, this.plan.outInChannels);
    this.outConv = new Conv2d(this.plan.outInChannels, c.outChannels, 3, { padding: 1 });
    zeroInit(this.outConv);
    this.addModule('out', new Sequential<tf.Tensor>([this.outNorm as unknown as Layer<tf.Tensor, tf.Tensor>, new SiLU(), this.outConv as unknown as Layer<tf.Tensor, tf.Tensor>]));
  }

  /** Timesteps as raw floats (0..T−1, not rescaled), one per sample or one for the batch. */
  forward(x: tf.Tensor4D, t: tf.Tensor1D | readonly number[] | number): tf.Tensor4D {
    const [b, h, w, ch] = x.shape;
    if (ch !== this.plan.config.inChannels) throw new ConfigError(`diffusion UNet: expected ${this.plan.config.inChannels} input channels, got [${x.shape}]`);
    checkUNetInput(this.plan, h, w);
    return tf.tidy(() => {
      const ts = typeof t === 'number' ? new Array<number>(b).fill(t) : t;
      const tt = Array.isArray(ts) ? tf.tensor1d(ts as number[], 'float32') : (ts as tf.Tensor1D);
      if (tt.shape[0] !== b) throw new ConfigError(`diffusion UNet: ${tt.shape[0]} timesteps for a batch of ${b}`);
      const temb = this.timeEmbedding.call(tt);
      const skips: tf.Tensor4D[] = [];
      let hcur = x;
      for (const m of this.down.items) {
        hcur = m.call(hcur, temb);
        skips.push(hcur);
      }
      hcur = this.middle.call(hcur, temb);
      for (const m of this.up.items) hcur = m.call(tf.concat([hcur, skips.pop()!], 3), temb);
      return withModuleScope(this.path ? `${this.path}.out` : 'out', 'Sequential', () =>
        this.outConv.call(silu(this.outNorm.call(hcur)) as tf.Tensor4D));
    });
  }
}
