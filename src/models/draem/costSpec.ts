import * as tf from '@tensorflow/tfjs';
import type { MethodCostSpec } from '../../energy/costsTable.js';
import { paperCosts } from '../../eval/paperReference.js';
import { DRAEM_PROFILES } from './config.js';
import { DiscriminativeSubNetwork, ReconstructiveSubNetwork, draemForward } from './network.js';

/**
 * DRAEM's Table 6 row (TABLE6.md): 97.42 M parameters = reconstructive 69,048,579 +
 * discriminative 28,374,146, and 198.44 GMAC = one forward of BOTH networks at 256², batch 1,
 * counted the ptflops way (true conv MACs 197.95 G + bias, BatchNorm, ReLU, max-pool and
 * upsampling elements). Built at the paper profile's widths; weights are left at their
 * constructor initialisation (counting does not need trained values).
 */
export const draemCostSpec: MethodCostSpec = {
  method: 'draem',
  inputSize: DRAEM_PROFILES.paper.crop,
  paperParamsM: paperCosts('draem')?.modelSizeParamsM ?? null,
  paperGmac: paperCosts('draem')?.gmac ?? null,
  paperRule: { description: 'reconstructive + discriminative sub-networks, all parameters (as the paper)' },
  note: 'one forward of both networks (reconstruction, then segmentation of [reconstruction, input]) at batch 1; softmax and the mean-filter score not counted',
  build() {
    const p = DRAEM_PROFILES.paper;
    const reconstructive = new ReconstructiveSubNetwork(p.reconstructiveWidth).eval();
    const discriminative = new DiscriminativeSubNetwork(p.discriminativeWidth).eval();
    return {
      modules: { reconstructive, discriminative },
      forward: (s: number) =>
        tf.tidy(() => draemForward({ reconstructive, discriminative }, tf.zeros([1, s, s, 3]) as tf.Tensor4D).logits),
    };
  },
};
