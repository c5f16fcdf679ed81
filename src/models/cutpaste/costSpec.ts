import * as tf from '@tensorflow/tfjs';
import type { MethodCostSpec } from '../../energy/costsTable.js';
import { paperCosts } from '../../eval/paperReference.js';
import { ResNet } from '../backbones/resnet.js';
import { CUTPASTE_PROFILES, numClasses } from './config.js';
import { CutPasteNet } from './network.js';

/**
 * CutPaste's Table 6 row (TABLE6.md): 11.77 M parameters = ResNet-18 encoder (11,176,512) + the
 * 2-layer projection head and 3-way classifier (593,667) = 11,770,179; 2.38 GMAC = one forward
 * of that network at 256², batch 1, counted the ptflops way (2.37 G conv MACs + BatchNorm, ReLU,
 * pooling, linear). Built at the paper profile; weights at their constructor initialisation.
 */
export const cutpasteCostSpec: MethodCostSpec = {
  method: 'cutpaste',
  inputSize: CUTPASTE_PROFILES.paper.crop,
  paperParamsM: paperCosts('cutpaste')?.modelSizeParamsM ?? null,
  paperGmac: paperCosts('cutpaste')?.gmac ?? null,
  paperRule: { description: 'ResNet-18 encoder + 2-layer projection head + 3-way classifier, all parameters (as the paper)' },
  note: 'one ResNet-18 + head forward at batch 1 (the GDE scores the pooled feature: one 512-d Mahalanobis distance, not counted)',
  build() {
    const p = CUTPASTE_PROFILES.paper;
    const net = new CutPasteNet(new ResNet('resnet18', { upTo: 'layer4' }), p.headLayers, numClasses(p.variant)).eval();
    return {
      modules: net,
      forward: (s: number) => tf.tidy(() => net.forward(tf.zeros([1, s, s, 3]) as tf.Tensor4D).logits),
    };
  },
};
