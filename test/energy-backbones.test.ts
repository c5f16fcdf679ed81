import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { patchcoreCostSpec, resnetPartParams } from '../src/models/patchcore/costSpec.js';
import { initBackend } from '../src/backend.js';
import { countCostRow, disposeCostNetworks } from '../src/energy/costsTable.js';
import { countMacs } from '../src/energy/macs.js';
import { resnet18 } from '../src/models/backbones/index.js';

/** Table 6 anchors (TABLE6.md): each needs a real network forward, so the file builds each net once. */
describe('backbone MACs and parameters', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('ResNet-18 at 224²: 1.81 GMAC and 11.69 M parameters', () => {
    const net = resnet18().eval();
    const before = tf.memory().numTensors;
    const r = countMacs(() => net.logits(tf.zeros([1, 224, 224, 3]) as tf.Tensor4D), { modules: net });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.totals.gmac).toBeCloseTo(1.81, 2);
    expect(r.params?.unique).toBe(11_689_512);
    expect(resnetPartParams('resnet18', ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'fc'])).toBe(11_689_512);
    net.dispose();
  });

  it('PatchCore (WRN-50-2 stem..layer3): 9.19 GMAC at 224² (ptflops within 1% of 9.24), 12.00 at 256², 24.86 M run, 68.88 M under the paper rule', async () => {
    const nets = await patchcoreCostSpec.build();
    try {
      const r224 = countCostRow(patchcoreCostSpec, nets, 224);
      expect(r224.gmac).toBeCloseTo(9.19, 2);
      expect(r224.macs.totals.byOp.conv?.macs).toBe(r224.macs.totals.macs); // conv-only network
      expect(Math.abs(r224.gmacPtflops / 9.24 - 1)).toBeLessThan(0.01);
      expect(r224.macs.params?.run).toBe(24_862_528);
      expect(r224.macs.params?.paperRule).toBe(68_883_240);
      expect(r224.paramsMPaperRule.toFixed(2)).toBe('68.88');
      // The architecture formula behind the paper rule reproduces the built part exactly.
      expect(resnetPartParams('wide_resnet50_2', ['stem', 'layer1', 'layer2', 'layer3'])).toBe(24_862_528);
      const r256 = countCostRow(patchcoreCostSpec, nets, 256);
      expect(r256.gmac).toBeCloseTo(12.0, 2);
    } finally {
      disposeCostNetworks(nets);
    }
  });
});
