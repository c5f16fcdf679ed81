/**
 * Train and evaluate one method on one category:
 *   npx tsx experiments/train.ts patchcore bottle [--profile cpu] [--data DIR] ...
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolve } from 'node:path';
import { BACKEND_CHOICES, parseBackendChoice } from '../src/backend.js';
import { ConfigError } from '../src/errors.js';
import { DATASET_LAYOUTS, parseDatasetLayout } from '../src/data/index.js';
import { parseCalibrationRule } from '../src/eval/metrics/index.js';
import { getMethod, methodNames } from '../src/registry.js';
import { parseSetOptions } from '../src/models/configOverrides.js';
import { prepareDataset } from '../src/run/prepareDataset.js';
import { resolveRunConfig } from '../src/run/resolveRunConfig.js';
import { trainAndEvaluate } from '../src/run/trainAndEvaluate.js';
import { setupRuntime } from '../src/runtime.js';
import { defaultRunDir } from '../src/train/runFolder.js';
import { runCli } from './cli.js';

runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('train.ts')
    .usage('$0 <method> <category> [options]\n\nTrains and evaluates a method; writes a run folder with config, metrics, scores, report and heatmaps.')
    .command('$0 <method> <category>', false)
    .positional('method', { type: 'string', describe: `one of: ${methodNames().join(', ')}` })
    .positional('category', { type: 'string', describe: 'MVTec AD category (or a custom folder in the same layout)' })
    .option('data', { type: 'string', describe: 'MVTec AD root (default $MVTEC_ROOT or ./data/mvtec_ad)' })
    .option('profile', { type: 'string', describe: "'paper' (faithful, GPU scale) or 'cpu' (minutes on 2 cores)" })
    .option('backend', { type: 'string', default: 'auto', choices: BACKEND_CHOICES as unknown as string[], describe: 'tfjs backend' })
    .option('seed', { type: 'number', default: 0, describe: 'drives splits, augmentation and initialisation' })
    .option('out', { type: 'string', describe: 'run folder (default runs/<method>/<category>/<timestamp>)' })
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
    .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted training in --out' })
    .strict()
    .help()
    .parseAsync();

  const log = (l: string): void => {
    process.stderr.write(`${l}\n`);
  };
  const warn = (l: string): void => {
    process.stderr.write(`\n${'!'.repeat(78)}\n${l}\n${'!'.repeat(78)}\n\n`);
  };
  const method = getMethod(String(argv.method));
  const category = String(argv.category);
  const profile = argv.profile ?? method.defaultProfile;
  const backboneInit = argv['backbone-init'] as 'pretrained' | 'random';
  const { config, backbone } = resolveRunConfig(
    method,
    profile,
    { imageSize: argv['image-size'], epochs: argv.epochs, backbone: argv.backbone, textures: argv.textures, set: parseSetOptions(argv.set) },
    { weightsPath: argv.weights, weightsDir: argv['weights-dir'], backboneInit },
    { category },
  );
  if (backbone?.fallback) log(`[backbone] ${backbone.reason}`);
  if (argv.resume && !argv.out) throw new ConfigError('--resume needs --out naming the run folder to continue');
  const rebalanceRaw = process.argv.includes('--rebalance');
  const backend = await setupRuntime(parseBackendChoice(String(argv.backend)), log);
  const dataset = await prepareDataset({
    category,
    data: argv.data,
    seed: argv.seed,
    valFraction: argv['val-fraction'],
    rebalance: rebalanceRaw,
    testNormalShare: argv.rebalance !== undefined && !Number.isNaN(argv.rebalance) ? argv.rebalance : undefined,
    synthetic: argv.synthetic,
    dataset: parseDatasetLayout(argv.dataset),
    splitCsv: argv['split-csv'],
  });
  if (dataset.notice) warn(dataset.notice);
  for (const w of dataset.split.warnings) log(`[data] warning: ${w}`);
  const runDir = resolve(argv.out ?? defaultRunDir(method.name, category));
  log(`[run] ${method.displayName} on ${category}, profile ${profile}, seed ${argv.seed} -> ${runDir}`);
  const result = await trainAndEvaluate({
    method,
    config,
    profile,
    dataset,
    backend,
    seed: argv.seed,
    runDir,
    backboneInit,
    weightsPath: argv.weights,
    backboneChoice: backbone?.reason,
    backboneFallback: backbone?.fallback,
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
  const m = result.metrics;
  const pct = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(2)}%`);
  process.stdout.write(
    [
      `${method.displayName} / ${category}${dataset.dataSource === 'synthetic' ? ' (SYNTHETIC DATA)' : ''}: ` +
        `image AUROC ${pct(m.image.auroc)}, AP ${pct(m.image.ap)}, pixel AUROC ${pct(m.pixel.auroc)}, AUPRO ${pct(m.pixel.aupro)}`,
      `  F1 oracle ${pct(m.oracle?.f1)} | F1 calibrated ${pct(m.calibrated?.f1)}; wall time ${result.wallTimeS.toFixed(1)} s`,
      `  run folder: ${result.runDir}`,
      '',
    ].join('\n'),
  );
  result.detector.dispose();
});
