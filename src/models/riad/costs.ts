import * as tf from '@tensorflow/tfjs';
import type { MethodCostSpec } from '../../energy/costsTable.js';
import { paperCosts } from '../../eval/paperReference.js';
import { RiadUNet } from './network.js';

/**
 * Table 6 row of RIAD (TABLE6.md): parameters = the U-Net (28,805,699 → "28.80", truncated);
 * GMAC = ONE U-Net forward at 256², batch 1, counted ptflops-style (77.20; true MACs 54.52, of
 * which 7.52 in the four transposed convolutions that ptflops charges 4× at stride 2). Training
 * runs 3 such passes per image and inference 12 (riad.md §5): Table 6 counts one.
 */
export const riadCostSpec: MethodCostSpec = {
  method: 'riad',
  inputSize: 256,
  paperParamsM: paperCosts('riad')?.modelSizeParamsM ?? null,
  paperGmac: paperCosts('riad')?.gmac ?? null,
  note: 'one inpainting U-Net forward at batch 1 (inference runs 12: 3 masks × 4 cell sizes; Table 6 counts one)',
  build() {
    const net = new RiadUNet(64).eval();
    return {
      modules: net,
      forward: (s: number) => tf.tidy(() => net.forward(tf.zeros([1, s, s, 3]) as tf.Tensor4D)),
    };
  },
};
