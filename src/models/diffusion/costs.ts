import * as tf from '@tensorflow/tfjs';
import type { CostNetworks, MethodCostSpec } from '../../energy/costsTable.js';
import type { ParamInclusionRule } from '../../energy/params.js';
import { paperCosts } from '../../eval/paperReference.js';
import { DiffusionUNet } from './unet.js';
import { DDAD_UNET, DIFFUSIONAD_UNET, type DiffusionUNetConfig } from './unetPlan.js';

/**
 * Table 6 cost pieces for the diffusion methods (TABLE6.md): one UNet forward at batch 1 at a
 * mid-chain timestep, counted by src/energy's kernel-level counter. True MACs include the attention
 * matmuls (DDAD 256²: 71.27 G); the ptflops column leaves them out, and GroupNorm32 and the
 * functional nearest upsampling with them, as ptflops' module hooks did (69.87 G; see macs.ts).
 */
export function unetCostNetworks(config: DiffusionUNetConfig, timestep = 500): CostNetworks {
  const unet = new DiffusionUNet(config).eval();
  return {
    modules: { unet },
    forward: (s: number) => tf.tidy(() => unet.forward(tf.zeros([1, s, s, config.inChannels]) as tf.Tensor4D, [timestep])),
  };
}

/**
 * A MethodCostSpec whose counted pass is one UNet forward; the methods' costSpec.ts can export
 * this directly or extend `build` with their other networks. `paperRule` defaults to all UNet
 * parameters (DDAD's rule: the WRN feature extractor is left out).
 */
export function unetCostSpec(opts: {
  method: string;
  config: DiffusionUNetConfig;
  note: string;
  paperRule?: ParamInclusionRule;
  inputSize?: number;
}): MethodCostSpec {
  return {
    method: opts.method,
    inputSize: opts.inputSize ?? opts.config.imageSize,
    paperParamsM: paperCosts(opts.method)?.modelSizeParamsM ?? null,
    paperGmac: paperCosts(opts.method)?.gmac ?? null,
    paperRule: opts.paperRule,
    note: opts.note,
    build: () => unetCostNetworks(opts.config),
  };
}

/** DDAD's Table 6 row (ddad.md §2): the UNet only, 32,952,707 parameters, 69.87 GMAC at 256². */
export const ddadUNetCostSpec: MethodCostSpec = unetCostSpec({
  method: 'ddad',
  config: DDAD_UNET,
  paperRule: { description: 'the UNet only; the WRN-101-2 feature extractor is left out (as the paper)' },
  note: 'one denoising UNet forward at batch 1 (the conditioned sampler runs 10 per image, plus two feature-extractor passes)',
});

/**
 * DiffusionAD's UNet alone (diffusionad.md §2.1; 131,654,403 parameters). The paper's row is a
 * copy of DDAD's (TABLE6.md); the method's own spec adds the segmentation network.
 */
export const diffusionadUNetCostSpec: MethodCostSpec = unetCostSpec({
  method: 'diffusionad',
  config: DIFFUSIONAD_UNET,
  paperRule: { description: "the reconstruction UNet only (the paper's row copies DDAD's 32.95 M / 69.87 G)" },
  note: 'one reconstruction UNet forward at batch 1 (inference runs 2, plus the segmentation network)',
});
