import { ConfigError } from '../../errors.js';
import type { EmbeddingOrder } from './timestepEmbedding.js';

/**
 * Configuration of the guided-diffusion-style noise predictor ε_θ(x_t, t) that DDAD (ddad.md §2)
 * and DiffusionAD (diffusionad.md §2.1) share (`UNetModel` in DDAD's unet.py and DiffusionAD's
 * Recon_subnetwork.py, with BigGAN up/down ResBlocks). The block plan below is the single
 * description of the architecture: the modules (unet.ts) are built from it and the analytic
 * parameter count reads it, so the two cannot drift apart.
 */
export interface DiffusionUNetConfig {
  /** Image channels in (and out, unless outChannels is set). */
  inChannels: number;
  outChannels?: number;
  /** Base width: 64 (DDAD), 128 (DiffusionAD). Also the sinusoid dimension. */
  baseChannels: number;
  /** Width multiplier per resolution level (both methods: 1,1,2,2,4,4 at 256 px). */
  channelMults: readonly number[];
  /** Plain ResBlocks per encoder level (decoder levels get one more). 2 in both methods. */
  numResBlocks: number;
  /** Pixel sides at which attention follows every plain ResBlock (32, 16, 8), read at imageSize. */
  attentionResolutions: readonly number[];
  /** The input side the attention resolutions refer to (the reference's img_size, 256). */
  imageSize: number;
  /** Attention heads (4 in both methods), unless numHeadChannels fixes the head width. */
  numHeads: number;
  numHeadChannels?: number;
  dropout: number;
  /** GroupNorm groups (32 in the reference; smaller only for tiny test configurations). */
  normGroups?: number;
  /** Time-embedding MLP width; default 4·baseChannels as the reference. */
  timeEmbedDim?: number;
  embeddingOrder?: EmbeddingOrder;
}

/** DDAD's UNet (ddad.md §2): 32,952,707 parameters. */
export const DDAD_UNET: DiffusionUNetConfig = {
  inChannels: 3, baseChannels: 64, channelMults: [1, 1, 2, 2, 4, 4], numResBlocks: 2,
  attentionResolutions: [32, 16, 8], imageSize: 256, numHeads: 4, dropout: 0,
};

/** DDAD-S (ddad.md §2): base 32, dropout 0.3, 2 heads; 8,257,731 parameters. */
export const DDAD_S_UNET: DiffusionUNetConfig = { ...DDAD_UNET, baseChannels: 32, numHeads: 2, dropout: 0.3 };

/** DiffusionAD's reconstruction sub-network (diffusionad.md §2.1): 131,654,403 parameters. */
export const DIFFUSIONAD_UNET: DiffusionUNetConfig = { ...DDAD_UNET, baseChannels: 128 };

export interface ResBlockPlan {
  kind: 'res';
  inChannels: number;
  outChannels: number;
  resample: 'none' | 'down' | 'up';
}

export interface AttentionPlan {
  kind: 'attn';
  channels: number;
  heads: number;
}

export interface StemPlan {
  kind: 'stem';
  inChannels: number;
  outChannels: number;
}

export type BlockPlan = ResBlockPlan | AttentionPlan | StemPlan;

/** One TimestepEmbedSequential of the reference: `down.i`, `middle`, `up.i`. */
export type SequentialPlan = BlockPlan[];

export interface UNetPlan {
  config: Required<Omit<DiffusionUNetConfig, 'numHeadChannels'>> & { numHeadChannels: number };
  down: SequentialPlan[];
  middle: SequentialPlan;
  up: SequentialPlan[];
  /** Channels into the output head GN → SiLU → conv3×3 (zero-init). */
  outInChannels: number;
}

function heads(c: DiffusionUNetConfig, ch: number): number {
  const hc = c.numHeadChannels ?? -1;
  if (hc === -1) {
    if (ch % c.numHeads !== 0) throw new ConfigError(`diffusion UNet: width ${ch} is not divisible by numHeads ${c.numHeads}`);
    return c.numHeads;
  }
  if (ch % hc !== 0) throw new ConfigError(`diffusion UNet: width ${ch} is not divisible by numHeadChannels ${hc}`);
  return ch / hc;
}

function positiveInt(v: number, name: string): void {
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`diffusion UNet: ${name} must be a positive integer, got ${v}`);
}

/**
 * The reference constructor's loop, verbatim in structure: level i has ds = 2^i; attention where
 * imageSize/ds is an attention resolution; a down ResBlock after every level but the last; in the
 * decoder numResBlocks + 1 ResBlocks per level, each fed concat(h, popped skip), with the up
 * ResBlock appended to the last one of every level but the full-resolution one.
 */
export function planUNet(config: DiffusionUNetConfig): UNetPlan {
  const c = {
    ...config,
    outChannels: config.outChannels ?? config.inChannels,
    normGroups: config.normGroups ?? 32,
    timeEmbedDim: config.timeEmbedDim ?? 4 * config.baseChannels,
    embeddingOrder: config.embeddingOrder ?? 'sin-cos',
    numHeadChannels: config.numHeadChannels ?? -1,
  };
  positiveInt(c.inChannels, 'inChannels');
  positiveInt(c.outChannels, 'outChannels');
  positiveInt(c.baseChannels, 'baseChannels');
  positiveInt(c.numResBlocks, 'numResBlocks');
  positiveInt(c.numHeads, 'numHeads');
  positiveInt(c.timeEmbedDim, 'timeEmbedDim');
  positiveInt(c.imageSize, 'imageSize');
  if (c.baseChannels % 2 !== 0) throw new ConfigError(`diffusion UNet: baseChannels ${c.baseChannels} must be even (sinusoidal embedding)`);
  if (c.channelMults.length < 1) throw new ConfigError('diffusion UNet: channelMults must not be empty');
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new ConfigError(`diffusion UNet: dropout must be in [0, 1), got ${c.dropout}`);
  const widths = c.channelMults.map((m) => m * c.baseChannels);
  for (const w of [c.baseChannels, ...widths]) {
    if (!Number.isInteger(w) || w % c.normGroups !== 0) throw new ConfigError(`diffusion UNet: width ${w} is not an integer multiple of normGroups ${c.normGroups}`);
  }
  if (widths[0] !== c.baseChannels) throw new ConfigError(`diffusion UNet: channelMults[0] must be 1 (the stem outputs baseChannels), got ${c.channelMults[0]}`);
  const attnDs = new Set(c.attentionResolutions.map((r) => {
    if (!Number.isInteger(r) || r < 1 || c.imageSize % r !== 0) throw new ConfigError(`diffusion UNet: attention resolution ${r} does not divide imageSize ${c.imageSize}`);
    return c.imageSize / r;
  }));

  const down: SequentialPlan[] = [[{ kind: 'stem', inChannels: c.inChannels, outChannels: c.baseChannels }]];
  const skips = [c.baseChannels];
  let ch = c.baseChannels;
  let ds = 1;
  widths.forEach((w, i) => {
    for (let r = 0; r < c.numResBlocks; r++) {
      const seq: SequentialPlan = [{ kind: 'res', inChannels: ch, outChannels: w, resample: 'none' }];
      ch = w;
      if (attnDs.has(ds)) seq.push({ kind: 'attn', channels: ch, heads: heads(c, ch) });
      down.push(seq);
      skips.push(ch);
    }
    if (i !== widths.length - 1) {
      down.push([{ kind: 'res', inChannels: ch, outChannels: ch, resample: 'down' }]);
      ds *= 2;
      skips.push(ch);
    }
  });
  const middle: SequentialPlan = [
    { kind: 'res', inChannels: ch, outChannels: ch, resample: 'none' },
    { kind: 'attn', channels: ch, heads: heads(c, ch) },
    { kind: 'res', inChannels: ch, outChannels: ch, resample: 'none' },
  ];
  const up: SequentialPlan[] = [];
  for (let i = widths.length - 1; i >= 0; i--) {
    for (let j = 0; j <= c.numResBlocks; j++) {
      const skip = skips.pop()!;
      const seq: SequentialPlan = [{ kind: 'res', inChannels: ch + skip, outChannels: widths[i], resample: 'none' }];
      ch = widths[i];
      if (attnDs.has(ds)) seq.push({ kind: 'attn', channels: ch, heads: heads(c, ch) });
      if (i > 0 && j === c.numResBlocks) {
        seq.push({ kind: 'res', inChannels: ch, outChannels: ch, resample: 'up' });
        ds /= 2;
      }
      up.push(seq);
    }
  }
  return { config: c, down, middle, up, outInChannels: ch };
}

/** Input sides the UNet accepts: divisible by 2^(levels − 1) (every down block halves). */
export function checkUNetInput(plan: UNetPlan, h: number, w: number): void {
  const f = 2 ** (plan.config.channelMults.length - 1);
  if (h % f !== 0 || w % f !== 0) throw new ConfigError(`diffusion UNet: input ${h}×${w} must be divisible by ${f} (${plan.config.channelMults.length} levels)`);
}

const conv = (k: number, i: number, o: number): number => k * k * i * o + o;
const linear = (i: number, o: number): number => i * o + o;
const gn = (c: number): number => 2 * c;

/** Parameters of one block, as torch counts them (GroupNorm affine included). */
export function blockParameterCount(b: BlockPlan, timeEmbedDim: number): number {
  switch (b.kind) {
    case 'stem':
      return conv(3, b.inChannels, b.outChannels);
    case 'attn':
      return gn(b.channels) + linear(b.channels, 3 * b.channels) + linear(b.channels, b.channels);
    case 'res':
      return gn(b.inChannels) + conv(3, b.inChannels, b.outChannels) + linear(timeEmbedDim, b.outChannels)
        + gn(b.outChannels) + conv(3, b.outChannels, b.outChannels)
        + (b.inChannels === b.outChannels ? 0 : conv(1, b.inChannels, b.outChannels));
  }
}

/** Analytic parameter count of the UNet a config builds (no tensors made). */
export function unetParameterCount(config: DiffusionUNetConfig): number {
  const p = planUNet(config);
  const c = p.config;
  const blocks = [...p.down.flat(), ...p.middle, ...p.up.flat()];
  return linear(c.baseChannels, c.timeEmbedDim) + linear(c.timeEmbedDim, c.timeEmbedDim)
    + blocks.reduce((s, b) => s + blockParameterCount(b, c.timeEmbedDim), 0)
    + gn(p.outInChannels) + conv(3, p.outInChannels, c.outChannels);
}
