import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultWeightsDir, findCachedWeights, torchHubCheckpointsDir } from '../../nn/weights.js';
import { ASSETS_DIR, getBackboneSpec, tfjsWeightCandidates, type BackboneName } from './index.js';

/**
 * Which backbone a run uses when the user did not name one (issue 13: a first run that
 * impresses). The methods' paper backbone (WideResNet-50-2 for PatchCore, later GLASS...) needs
 * 270 MB of weights a fresh machine does not have; a random-init WRN-50 gives PatchCore only
 * ~80 % image AUROC on bottle. So, in this order:
 *   1. `--backbone NAME`, `--weights FILE` or `--backbone-init random`: the user decided, honour it;
 *   2. the paper backbone when its weights are already on disk (weights folder or torch.hub
 *      cache; no network here: a 270 MB download is not a first run's business, `--backbone
 *      wide_resnet50_2` asks for it);
 *   3. otherwise the ImageNet-pretrained Tiny Darknet shipped in assets/backbones/tiny_darknet.
 */

export const SHIPPED_FALLBACK_BACKBONE: BackboneName = 'tiny_darknet';

export interface BackboneChoiceRequest {
  /** The method's own backbone (its profile's), e.g. 'wide_resnet50_2'. */
  preferred: string;
  /** `--backbone`. */
  requested?: string;
  /** `--weights`. */
  weightsPath?: string;
  init: 'pretrained' | 'random';
  weightsDir?: string;
}

export interface BackboneChoice {
  name: string;
  /** True when the shipped backbone stands in for the preferred one. */
  fallback: boolean;
  /** One line for the log, report.md and metrics.json. */
  reason: string;
}

/** Whether pretrained weights for `name` are on disk now (no download). */
export function backboneWeightsOnDisk(name: string, weightsDir?: string): boolean {
  const dw = getBackboneSpec(name).defaultWeights;
  if (dw.kind === 'huggingface') {
    return findCachedWeights({ repo: dw.repo, filename: dw.filename, torchvision: dw.torchvision, weightsDir }) !== null;
  }
  return tfjsWeightCandidates(dw.folder, weightsDir, dw.shipped).some((d) => existsSync(join(d, 'model.json')) && statSync(join(d, 'model.json')).isFile());
}

export function chooseBackbone(req: BackboneChoiceRequest): BackboneChoice {
  if (req.requested !== undefined) return { name: req.requested, fallback: false, reason: `--backbone ${req.requested}` };
  if (req.weightsPath !== undefined) return { name: req.preferred, fallback: false, reason: `${req.preferred} with --weights ${req.weightsPath}` };
  if (req.init === 'random') return { name: req.preferred, fallback: false, reason: `${req.preferred}, random init as asked (--backbone-init random)` };
  if (backboneWeightsOnDisk(req.preferred, req.weightsDir)) return { name: req.preferred, fallback: false, reason: `${req.preferred} (its weights are on disk)` };
  const dw = getBackboneSpec(req.preferred).defaultWeights;
  const where = dw.kind === 'huggingface'
    ? `${join(resolve(req.weightsDir ?? defaultWeightsDir()), dw.repo, dw.filename)}` +
      (dw.torchvision ? `, ${dw.torchvision.filename} in its torchvision/ folder or ${torchHubCheckpointsDir()}` : '')
    : dw.folder;
  return {
    name: SHIPPED_FALLBACK_BACKBONE,
    fallback: true,
    reason:
      `no ${req.preferred} weights on disk (${where}), so using the ImageNet-pretrained Tiny Darknet shipped in ` +
      `${join(ASSETS_DIR, 'backbones', 'tiny_darknet')}; for the paper's backbone pass --backbone ${req.preferred} (downloads when online) or --weights FILE`,
  };
}
