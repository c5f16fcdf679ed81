/**
 * The options and the run path shared by experiments/train.ts (one seed) and experiments/seeds.ts
 * (several seeds): both parse the same flags, resolve the config and backend once, and run each
 * seed through the same prepareDataset + trainAndEvaluate calls, so a seed in a sweep is the run
 * train.ts would make with `--seed k --out <dir>`. Separate from cli.ts, which light CLIs
 * (evaluate.ts) import without loading tfjs and the method registry.
 */
import type { Argv } from 'yargs';
import { BACKEND_CHOICES, parseBackendChoice, type BackendInfo } from '../src/backend.js';
import { DATASET_LAYOUTS, parseDatasetLayout } from '../src/data/index.js';
import { parseCalibrationRule } from '../src/eval/metrics/index.js';
import type { BackboneChoice } from '../src/models/backbones/choice.js';
import type { BaseMethodConfig, MethodDefinition } from '../src/models/method.js';
import { getMethod, methodNames } from '../src/registry.js';
import { parseSetOptions } from '../src/models/configOverrides.js';
import { prepareDataset } from '../src/run/prepareDataset.js';
import { resolveRunConfig } from '../src/run/resolveRunConfig.js';
import { trainAndEvaluate, type RunResult } from '../src/run/trainAndEvaluate.js';
import { setupRuntime } from '../src/runtime.js';

/** Adds `<method> <category>` and every training option except `--seed` and `--out` (the callers differ there). */
export function withTrainOptions<T>(y: Argv<T>) {
  return y
    .positional('method', { type: 'string', describe: `one of: ${methodNames().join(', ')}` })
    .positional('category', { type: 'string', describe: 'MVTec AD category (or a custom folder in the same layout)' })
    .option('data', { type: 'string', describe: 'MVTec AD root (default $MVTEC_ROOT or ./data/mvtec_ad)' })
    .option('profile', { type: 'string', describe: "'paper' (faithful, GPU scale) or 'cpu' (minutes on 2 cores)" })
    .option('backend', { type: 'string', default: 'auto', choices: BACKEND_CHOICES as unknown as string[], describe: 'tfjs backend' })
    .option('weights', { type: 'string', describe: 'backbone weights file (.safetensors or torch.save .pth, torchvision/timm names; TF.js folder for tiny_darknet/mobilenet_v1)' })
    .option('weights-dir', { type: 'string', describe: 'weights folder (default $ADBENCH_WEIGHTS or ./weights)' })
    .option('backbone-init', { type: 'string', default: 'pretrained', choices: ['pretrained', 'random'], describe: 'random skips pretrained weights' })
    .option('backbone', { type: 'string', describe: 'backbone name (wide_resnet50_2, resnet18, resnet50, mobilenet_v1, tiny_darknet)' })
    .option('image-size', { type: 'number', describe: 'network input size (crop); resize keeps the profile ratio' })
    .option('epochs', { type: 'number', describe: 'training epochs (trained methods)' })
    .option('textures', { type: 'string', describe: "texture images for DRAEM-style anomalies (e.g. DTD's dtd/images); default procedural textures" })
    .option('set', { type: 'string', array: true, describe: 'override a config field, e.g. --set coresetRatio=0.1 (repeatable)' })
    .option('val-fraction', { type: 'number', default: 0.1, describe: 'share of normal train images held out for calibration' })
    .option('rebalance', { type: 'number', describe: 'move normal train images to test until normals are this share of test (paper sec. 3.2; default 0.5 when given without value)' })
    .option('calibration', { type: 'string', default: 'quantile:0.99', describe: "threshold rule on validation normals: 'quantile:Q', 'max' or 'meanStd:K'" })
    .option('dataset', { type: 'string', default: 'mvtec_ad', choices: [...DATASET_LAYOUTS], describe: 'layout of --data: mvtec_ad, visa (split_csv/1cls.csv), mvtec_ad2 (test_public), folder (normal/, abnormal/, masks/)' })
    .option('split-csv', { type: 'string', describe: 'VisA split CSV (default <data>/split_csv/1cls.csv)' })
    .option('synthetic', { type: 'boolean', default: false, describe: 'use the built-in synthetic dataset' })
    .option('co2-factor', { type: 'number', default: 0.475, describe: 'kg CO2 per kWh (paper: 0.475)' })
    .option('pue', { type: 'number', default: 1.0, describe: 'power usage effectiveness applied to energy before CO2' })
    .option('idle-baseline', { type: 'number', default: 0, describe: 'seconds of idle power to sample before training (net-of-idle energy)' })
    .option('cache', { type: 'boolean', default: true, describe: 'cache decoded+resized images in $ADBENCH_CACHE or data/.cache/preprocessed (--no-cache to disable)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted training in --out' });
}

export type TrainArgv = Awaited<ReturnType<ReturnType<typeof withTrainOptions>['parseAsync']>>;

export const log = (l: string): void => {
  process.stderr.write(`${l}\n`);
};
export const warn = (l: string): void => {
  process.stderr.write(`\n${'!'.repeat(78)}\n${l}\n${'!'.repeat(78)}\n\n`);
};

/** What does not depend on the seed: method, resolved config and profile, the backend. */
export interface TrainSetup {
  argv: TrainArgv;
  method: MethodDefinition;
  category: string;
  profile: string;
  config: BaseMethodConfig;
  /** How the backbone was chosen (null for methods without one). */
  backbone: BackboneChoice | null;
  backend: BackendInfo;
}

export async function setupTraining(argv: TrainArgv): Promise<TrainSetup> {
  const method = getMethod(String(argv.method));
  const profile = argv.profile ?? method.defaultProfile;
  const category = String(argv.category);
  const { config, backbone } = resolveRunConfig(
    method,
    profile,
    { imageSize: argv['image-size'], epochs: argv.epochs, backbone: argv.backbone, textures: argv.textures, set: parseSetOptions(argv.set) },
    { weightsPath: argv.weights, weightsDir: argv['weights-dir'], backboneInit: argv['backbone-init'] as 'pretrained' | 'random' },
    { category },
  );
  if (backbone?.fallback) log(`[backbone] ${backbone.reason}`);
  const backend = await setupRuntime(parseBackendChoice(String(argv.backend)), log);
  return { argv, method, category, profile, config, backbone, backend };
}

/** One seed into `runDir`: the split for that seed, then train, evaluate and write the run folder. */
export async function runSeed(s: TrainSetup, seed: number, runDir: string): Promise<RunResult & { synthetic: boolean }> {
  const { argv, method, category } = s;
  const dataset = await prepareDataset({
    category,
    data: argv.data,
    seed,
    valFraction: argv['val-fraction'],
    rebalance: process.argv.includes('--rebalance'),
    testNormalShare: argv.rebalance !== undefined && !Number.isNaN(argv.rebalance) ? argv.rebalance : undefined,
    synthetic: argv.synthetic,
    dataset: parseDatasetLayout(argv.dataset),
    splitCsv: argv['split-csv'],
  });
  if (dataset.notice) warn(dataset.notice);
  for (const w of dataset.split.warnings) log(`[data] warning: ${w}`);
  log(`[run] ${method.displayName} on ${category}, profile ${s.profile}, seed ${seed} -> ${runDir}`);
  const result = await trainAndEvaluate({
    method,
    // A copy per seed: a method must not see state another seed's run left in its config.
    config: structuredClone(s.config),
    profile: s.profile,
    dataset,
    backend: s.backend,
    seed,
    runDir,
    backboneInit: argv['backbone-init'] as 'pretrained' | 'random',
    weightsPath: argv.weights,
    backboneChoice: s.backbone?.reason,
    backboneFallback: s.backbone?.fallback,
    weightsDir: argv['weights-dir'],
    resume: argv.resume,
    calibration: parseCalibrationRule(argv.calibration),
    co2Factor: argv['co2-factor'],
    pue: argv.pue,
    idleBaselineS: argv['idle-baseline'],
    cacheDir: argv.cache ? undefined : null,
    argv: process.argv.slice(2),
    log,
    warn,
  });
  return { ...result, synthetic: dataset.dataSource === 'synthetic' };
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(2)}%`);

/** The summary train.ts prints on stdout for one run. */
export function formatRunSummary(s: TrainSetup, r: RunResult & { synthetic: boolean }): string {
  const m = r.metrics;
  return [
    `${s.method.displayName} / ${s.category}${r.synthetic ? ' (SYNTHETIC DATA)' : ''}: ` +
      `image AUROC ${pct(m.image.auroc)}, AP ${pct(m.image.ap)}, pixel AUROC ${pct(m.pixel.auroc)}, AUPRO ${pct(m.pixel.aupro)}`,
    `  F1 oracle ${pct(m.oracle?.f1)} | F1 calibrated ${pct(m.calibrated?.f1)}; wall time ${r.wallTimeS.toFixed(1)} s`,
    `  run folder: ${r.runDir}`,
    '',
  ].join('\n');
}
