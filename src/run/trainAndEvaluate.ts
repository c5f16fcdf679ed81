import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { BackendInfo } from '../backend.js';
import { defaultCacheDir, loadSamples, type LoadedSample } from '../data/index.js';
import { resizeNearest } from '../data/resample.js';
import { transformOf, validateProtocol } from '../models/protocol.js';
import { computeMetrics, type CalibrationRule, type MetricsReport } from '../eval/metrics/index.js';
import { renderReport, type ReportMetrics } from '../eval/report.js';
import { writeHeatmapPanel } from '../eval/heatmap.js';
import { scoreImages, type ScoredSet } from '../eval/scoreImages.js';
import type { BaseMethodConfig, MethodDefinition } from '../models/method.js';
import type { AnomalyDetector, PixelStorage, PredictOptions } from '../models/types.js';
import { environmentVersions, writeFileAtomic, writeJsonAtomic } from '../train/runFolder.js';
import { CostMeter, countMacs, timeInference, writeCostArtifacts, type InferenceTiming } from '../energy/index.js';
import { paperCosts } from '../eval/paperReference.js';
import { splitToJSON } from '../data/splits.js';
import { Rng } from '../util/rng.js';
import { setInitSeed } from '../nn/init.js';
import { InMemoryImageSource } from './imageSource.js';
import { Progress } from '../train/progress.js';
import type { PreparedDataset } from './prepareDataset.js';

export interface RunOptions {
  method: MethodDefinition;
  config: BaseMethodConfig;
  profile: string;
  dataset: PreparedDataset;
  backend: BackendInfo;
  seed: number;
  runDir: string;
  backboneInit: 'pretrained' | 'random';
  weightsPath?: string;
  weightsDir?: string;
  /** How the backbone was chosen (resolveRunConfig), recorded in config.json, metrics.json and report.md. */
  backboneChoice?: string;
  /** The chosen backbone stands in for the method's paper backbone (a warning line in report.md). */
  backboneFallback?: boolean;
  resume?: boolean;
  calibration?: CalibrationRule;
  /** kg CO2 per kWh (default 0.475, as the paper) and PUE (default 1.0). */
  co2Factor?: number;
  pue?: number;
  /** Seconds of idle power sampled before training (0 = none). */
  idleBaselineS?: number;
  /** Timed inference repeats (after warm-up) for the per-image time. */
  inferenceRepeats?: number;
  /** Preprocessed-image cache folder; default data/.cache/preprocessed ($ADBENCH_CACHE); null disables it. */
  cacheDir?: string | null;
  /** Number of normal and of anomalous test images drawn as heatmap panels. */
  heatmaps?: number;
  /** Full argv, recorded in config.json. */
  argv?: string[];
  log: (line: string) => void;
  warn: (line: string) => void;
}

export interface RunResult {
  runDir: string;
  metrics: MetricsReport;
  wallTimeS: number;
  detector: AnomalyDetector;
}


/**
 * Training and validation images are kept as uint8 levels (4× less memory; exact for 8-bit files,
 * see toLevels) and their decoded floats dropped; test images stay float32, shared with the
 * loaded samples that the metrics and heatmaps need anyway.
 */
function toSource(samples: LoadedSample[], storage: PixelStorage): InMemoryImageSource {
  return new InMemoryImageSource(samples.map((s) => s.sample.id), samples.map((s) => s.image), { storage });
}

const rulePhrase = (r: CalibrationRule): string =>
  r.kind === 'quantile' ? `${r.q} quantile of validation normal scores` : r.kind === 'max' ? 'max validation normal score' : `mean + ${r.k}·std of validation normal scores`;

/**
 * One run end to end: load the split, fit/train the method, score validation normals (threshold
 * calibration) and the test set, compute metrics, and write the run folder. The test set is used
 * for nothing but the final metrics.
 */
export async function trainAndEvaluate(o: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  const { method, config, dataset, log } = o;
  mkdirSync(o.runDir, { recursive: true });
  const rng = new Rng(o.seed);
  setInitSeed(o.seed);

  const protocol = method.protocol(config);
  validateProtocol(method.name, protocol);
  const transform = transformOf(protocol.data);
  const evalTransform = transformOf(protocol.evaluation.data, protocol.evaluation.maskThreshold);
  const split = dataset.split;
  writeJsonAtomic(join(o.runDir, 'config.json'), {
    method: method.name,
    paperId: method.paperId,
    category: dataset.requestedCategory,
    datasetCategory: dataset.index.category,
    dataSource: dataset.dataSource,
    datasetRoot: dataset.index.root,
    profile: o.profile,
    config,
    transform,
    evaluationTransform: evalTransform,
    protocol,
    seed: o.seed,
    backboneInit: o.backboneInit,
    weights: o.weightsPath ?? null,
    backboneChoice: o.backboneChoice ?? null,
    backend: o.backend,
    versions: environmentVersions(),
    argv: o.argv ?? null,
    split: splitToJSON(split),
  });

  // Networks and weights first: a missing --weights file fails before minutes of image decoding.
  const detector = await method.create(config, {
    backboneInit: o.backboneInit,
    weightsPath: o.weightsPath,
    weightsDir: o.weightsDir,
    log,
    seed: o.seed,
    warn: o.warn,
    backboneChoice: o.backboneChoice,
    category: dataset.requestedCategory,
  });

  log(`[data] ${dataset.dataSource} ${dataset.index.category}: ${split.train.length} train, ${split.validation.length} validation, ${split.test.length} test; preprocessing to ${config.crop}x${config.crop}`);
  const tl = performance.now();
  const cache = o.cacheDir === null ? null : (o.cacheDir ?? defaultCacheDir());
  // Validation samples are kept for their ids in scores.csv only (the image floats go).
  const [train, [validation, valIds], testS] = await Promise.all([
    loadSamples(split.train, transform, 4, cache).then((s) => toSource(s, 'uint8')),
    loadSamples(split.validation, evalTransform, 4, cache).then((s) => [toSource(s, 'uint8'), s.map((v) => v.sample.id)] as const),
    loadSamples(split.test, evalTransform, 4, cache),
  ]);
  log(`[data] decoded and resized ${train.length + validation.length + testS.length} images in ${((performance.now() - tl) / 1000).toFixed(1)} s`);
  const test = toSource(testS, 'float32');

  const meter = await CostMeter.create({ co2: { factorKgPerKwh: o.co2Factor, pue: o.pue } });
  if (o.idleBaselineS && o.idleBaselineS > 0) await meter.measureIdle(o.idleBaselineS);
  const tFit = performance.now();
  // Methods that use the shared trainer start/stop 'train' themselves (around the loop only);
  // memory-bank methods are metered around their whole fit.
  meter.start('train');
  try {
    await detector.fit(train, { rng: rng.fork('fit'), log, runDir: o.runDir, validation, resume: o.resume, category: dataset.requestedCategory });
  } finally {
    await meter.stop('train');
  }
  const fitSeconds = (performance.now() - tFit) / 1000;
  log(`[train] ${method.name} fitted in ${fitSeconds.toFixed(1)} s`);
  await detector.save(join(o.runDir, 'model'));

  const ev = protocol.evaluation;
  const bs = ev.batchSize;
  const mapSize = ev.mapSize === 'input' ? undefined : ev.mapSize;
  const scoreRng = (set: string): Rng | undefined => (ev.stochastic ? rng.fork(`score-${set}`) : undefined);
  const valScores: ScoredSet | null = validation.length > 0
    ? await scoreImages(detector, validation, bs, { keepMaps: false, rng: scoreRng('validation') })
    : null;
  meter.start('test');
  const progress = new Progress({ total: test.length, label: 'score test', log });
  const scored = await scoreImages(detector, test, bs, { onBatch: (done) => progress.update(done), rng: scoreRng('test'), mapSize });
  progress.end();
  await meter.stop('test');
  log(`[eval] scored ${test.length} test images in ${scored.seconds.toFixed(1)} s (${((scored.seconds / Math.max(1, test.length)) * 1000).toFixed(0)} ms/image)`);

  const labels = testS.map((s) => s.sample.label);
  // Datasets without ground truth (a folder layout without masks/): an anomalous image without a
  // mask would count as all-normal pixels, so pixel metrics are left out rather than made wrong.
  const haveMasks = testS.every((s) => s.sample.label === 0 || s.sample.maskPath !== null);
  const metrics = computeMetrics({
    imageScores: scored.scores,
    imageLabels: labels,
    maps: haveMasks ? scored.maps.map((data, i) => ({ width: scored.width, height: scored.height, data, id: scored.ids[i] })) : undefined,
    masks: haveMasks
      ? testS.map((s) => {
          if (s.sample.label !== 1) return null;
          // protocol mapSize: ground truth (already resized/cropped like its image) nearest-resized to the maps.
          const m = mapSize === undefined ? s.mask : { data: resizeNearest(s.mask.data, s.mask.h, s.mask.w, 1, mapSize, mapSize), h: mapSize, w: mapSize };
          return { width: m.w, height: m.h, data: m.data, id: s.sample.id };
        })
      : undefined,
    validationNormalScores: valScores?.scores,
    calibration: o.calibration,
  });

  // scores.csv: one row per test image (and validation normals, marked), for any external tool.
  const rows = ['id,score,label,defect_type,split'];
  testS.forEach((s, i) => rows.push(`${s.sample.id},${scored.scores[i]},${s.sample.label},${s.sample.defectType},test`));
  valIds.forEach((id, i) => rows.push(`${id},${valScores?.scores[i]},0,good,validation`));
  writeFileAtomic(join(o.runDir, 'scores.csv'), `${rows.join('\n')}\n`);

  const metricsJson = {
    image: metrics.image,
    pixel: { auroc: metrics.pixel.auroc, aupro: metrics.pixel.aupro },
    calibrated: metrics.calibrated
      ? { ...metrics.calibrated, rule: rulePhrase(metrics.calibrated.rule) }
      : { threshold: null, precision: null, recall: null, f1: null, rule: 'no validation normals' },
    oracle: metrics.oracle ?? { threshold: null, precision: null, recall: null, f1: null },
    notes: metrics.notes,
    dataSource: dataset.dataSource,
    backboneInit: (detector.describe().backboneInit as string | undefined) ?? null,
    backbone: (detector.describe().backbone as string | undefined) ?? null,
    backboneChoice: o.backboneChoice ?? null,
  };
  writeJsonAtomic(join(o.runDir, 'metrics.json'), metricsJson);

  await writeHeatmaps(o, scored, testS);

  const costsMarkdown = await measureCosts(o, detector, test, meter, { batchSize: bs, rng: scoreRng('timing') });

  const wallTimeS = (performance.now() - t0) / 1000;
  // Persisted so that tools reading finished run folders (experiments/seeds.ts) get the wall time too.
  writeJsonAtomic(join(o.runDir, 'timing.json'), { wallTimeS, fitSeconds, testScoringSeconds: scored.seconds });
  const details = { ...detector.describe(), fitSeconds, testScoringSeconds: scored.seconds };
  const report = renderReport({
    method: method.name,
    paperId: method.paperId,
    displayName: method.displayName,
    category: dataset.requestedCategory,
    profile: o.profile,
    backend: o.backend.active,
    seed: o.seed,
    dataSource: dataset.dataSource,
    backboneInit: metricsJson.backboneInit,
    backboneFallback: o.backboneFallback ? o.backboneChoice : undefined,
    metrics: metricsJson as ReportMetrics,
    counts: {
      train: train.length,
      validation: validation.length,
      testNormal: labels.filter((l) => l === 0).length,
      testAnomalous: labels.filter((l) => l === 1).length,
    },
    wallTimeS,
    details,
    costsMarkdown,
  });
  writeFileAtomic(join(o.runDir, 'report.md'), report);
  return { runDir: o.runDir, metrics, wallTimeS, detector };
}

/**
 * MACs of one inference call (batch 1, every kernel counted and attributed to its module), the
 * per-image inference time (median after warm-up, batch 1 and the configured batch), and the
 * meter's energy/power: costs.json, power-trace.csv, macs.csv, power.png. Returns the report
 * section laid out like Tables 5 and 6 with the paper's numbers beside ours.
 */
async function measureCosts(
  o: RunOptions, detector: AnomalyDetector, test: InMemoryImageSource, meter: CostMeter, scoring: { batchSize: number; rng?: Rng },
): Promise<string> {
  const popts: PredictOptions = scoring.rng ? { rng: scoring.rng } : {};
  const one = test.batch(0, 1);
  const macs = countMacs(() => detector.predict(one, popts), { modules: detector.modules() });
  const repeats = o.inferenceRepeats ?? 5;
  const inference: InferenceTiming[] = [await timeInference(() => detector.predict(one, popts), { warmup: 1, repeats, batch: 1 })];
  one.dispose();
  const bs = Math.min(scoring.batchSize, test.length);
  if (bs > 1) {
    const many = test.batch(0, bs);
    inference.push(await timeInference(() => detector.predict(many, popts), { warmup: 1, repeats: Math.max(1, Math.ceil(repeats / 2)), batch: bs }));
    many.dispose();
  }
  await meter.close();
  const p = paperCosts(o.method.paperId);
  const artifacts = await writeCostArtifacts(o.runDir, {
    method: o.method.displayName,
    meter,
    macs,
    macsPass: `one predict() call at batch 1, ${test.height}x${test.width} input (backbone, scoring and map post-processing)`,
    inference,
    paper: p
      ? {
          co2Kg: p.co2Kg, energyKj: p.energyKj, gpuPowerW: p.gpuPowerW, trainTimeS: p.trainTimeS,
          inferenceTimeS: p.inferenceTimeS, gpuUtilPct: p.gpuUtilPct, modelSizeMb: p.modelSizeParamsM, gmac: p.gmac,
          source: 'Cools et al. 2025, Tables 5 and 6 (GPU, paper configuration)',
        }
      : null,
    backend: o.backend.active,
    notes: o.profile === 'paper' ? [] : [`profile '${o.profile}': reduced resolution/epochs, not comparable in absolute terms to the paper's GPU run`],
  });
  return artifacts.markdown;
}

async function writeHeatmaps(o: RunOptions, scored: ScoredSet, testS: LoadedSample[]): Promise<void> {
  const k = o.heatmaps ?? 4;
  if (k <= 0 || scored.maps.length === 0) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of scored.maps) for (const v of m) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const normals = testS.map((s, i) => [s, i] as const).filter(([s]) => s.sample.label === 0).slice(0, k);
  const anomalous = testS.map((s, i) => [s, i] as const).filter(([s]) => s.sample.label === 1);
  // Spread anomalous picks over defect types.
  const step = Math.max(1, Math.floor(anomalous.length / k));
  const picks = [...normals, ...anomalous.filter((_, j) => j % step === 0).slice(0, k)];
  for (const [s, i] of picks) {
    const name = s.sample.id.replace(/[/\\]/g, '_');
    const sameSize = scored.height === s.image.h && scored.width === s.image.w;
    await writeHeatmapPanel(join(o.runDir, 'heatmaps', `${name}.png`), {
      image: s.image.data,
      // A map at another resolution (protocol mapSize) is drawn nearest-resized onto its image.
      map: sameSize ? scored.maps[i] : resizeNearest(scored.maps[i], scored.height, scored.width, 1, s.image.h, s.image.w),
      mask: s.sample.label === 1 ? s.mask.data : null,
      height: s.image.h,
      width: s.image.w,
      range: [lo, hi],
    });
  }
}
