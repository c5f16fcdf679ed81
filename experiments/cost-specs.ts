import * as tf from '@tensorflow/tfjs';
import { registerCostSpec, type MethodCostSpec } from '../src/energy/costsTable.js';
import { RESNET_CONFIGS, RESNET_STAGES, wideResnet50_2, type ResNetArch, type ResNetStage } from '../src/models/backbones/index.js';
import { draemCostSpec } from '../src/models/draem/costSpec.js';
import { riadCostSpec } from '../src/models/riad/costs.js';
import { patchsvddCostSpec } from '../src/models/patchsvdd/costSpec.js';

/**
 * Cost specs (networks + the paper's Table 6 counting rule) of the methods that exist so far, for
 * experiments/costs.ts. A method owner may move its spec next to its code; the CLI only needs
 * `registerCostSpec` to have run.
 */

/**
 * Parameters of torchvision ResNet parts we do not build, from the architecture: the paper counted
 * the whole network for PatchCore although only stem..layer3 runs, and building layer4 + fc only
 * to count them would allocate 44 M random weights. BatchNorm: weight + bias (buffers excluded).
 */
export function resnetPartParams(arch: ResNetArch, parts: readonly (ResNetStage | 'stem' | 'fc')[], numClasses = 1000): number {
  const { block, layers, widthPerGroup } = RESNET_CONFIGS[arch];
  const expansion = block === 'basic' ? 1 : 4;
  const bn = (c: number): number => 2 * c;
  let total = 0;
  let inplanes = 64;
  if (parts.includes('stem')) total += 3 * 64 * 49 + bn(64);
  RESNET_STAGES.forEach((stage, s) => {
    const planes = 64 * 2 ** s;
    let n = 0;
    for (let b = 0; b < layers[s]; b++) {
      const stride = b === 0 && s > 0 ? 2 : 1;
      if (block === 'basic') n += 9 * inplanes * planes + bn(planes) + 9 * planes * planes + bn(planes);
      else {
        const width = Math.floor(planes * (widthPerGroup / 64));
        n += inplanes * width + bn(width) + 9 * width * width + bn(width) + width * planes * expansion + bn(planes * expansion);
      }
      if (b === 0 && (stride !== 1 || inplanes !== planes * expansion)) n += inplanes * planes * expansion + bn(planes * expansion);
      inplanes = planes * expansion;
    }
    if (parts.includes(stage)) total += n;
  });
  if (parts.includes('fc')) total += inplanes * numClasses + numClasses;
  return total;
}

export const patchcoreCostSpec: MethodCostSpec = {
  method: 'patchcore',
  inputSize: 224,
  paperParamsM: 68.88,
  paperGmac: 9.24,
  paperRule: {
    description: 'the whole WRN-50-2 (layer4 + fc counted though never run), as the paper',
    extra: [{ label: 'WRN-50-2 layer4 + fc (not built, never run)', params: resnetPartParams('wide_resnet50_2', ['layer4', 'fc']) }],
  },
  note: 'one WRN-50-2 stem..layer3 forward at batch 1 (feature aggregation and NN search not counted, as the paper)',
  build() {
    const wrn = wideResnet50_2({ upTo: 'layer3' }).eval();
    return {
      modules: wrn,
      forward: (s: number) => wrn.forward(tf.zeros([1, s, s, 3]) as tf.Tensor4D),
    };
  },
};

const BUILTIN: readonly MethodCostSpec[] = [patchcoreCostSpec, draemCostSpec, riadCostSpec, patchsvddCostSpec];

export function registerBuiltinCostSpecs(): void {
  for (const s of BUILTIN) registerCostSpec(s);
}
