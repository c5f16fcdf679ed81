import { ConfigError } from '../../errors.js';
import { averagePrecision } from './averagePrecision.js';
import { checkMapsMasks, type AnomalyMap, type DefectMask } from './maps.js';
import { pixelAuroc, type PixelAurocOptions } from './pixelAuroc.js';
import { aupro, DEFAULT_PRO_FPR_LIMIT } from './pro.js';
import { auroc } from './roc.js';
import {
  calibrateThreshold,
  DEFAULT_CALIBRATION,
  metricsAtThreshold,
  oracleThreshold,
  type CalibrationRule,
} from './thresholds.js';
import { checkScoresLabels } from './validate.js';

export interface MetricsInput {
  /** One score per TEST image, higher = more anomalous. */
  readonly imageScores: ArrayLike<number>;
  /** 1 = anomalous, 0 = normal, aligned with imageScores. */
  readonly imageLabels: ArrayLike<number>;
  /** Per-pixel maps of the test images; pixel metrics are computed only with `masks` too. */
  readonly maps?: readonly AnomalyMap[];
  /** Ground-truth masks aligned with `maps` (null = defect-free image). */
  readonly masks?: readonly (DefectMask | null)[];
  /** Image scores of held-out NORMAL validation images (never test images) for calibration. */
  readonly validationNormalScores?: ArrayLike<number>;
  /** Calibration rule; default quantile q = 0.99 (see CalibrationRule). */
  readonly calibration?: CalibrationRule;
  /** Pixel AUROC method (default exact). */
  readonly pixelAuroc?: PixelAurocOptions;
  /** AU-PRO integration limit (default 0.3). */
  readonly proFprLimit?: number;
}

export interface MetricsReport {
  readonly image: { readonly auroc: number | null; readonly ap: number | null };
  readonly pixel: {
    readonly auroc: number | null;
    /** Bound on |pixel AUROC error| (0 when exact, null when not computed). */
    readonly aurocMaxAbsError: number | null;
    readonly aupro: number | null;
  };
  /** Threshold from validation normals applied to the test scores; null without validation scores. */
  readonly calibrated: {
    readonly threshold: number;
    readonly precision: number | null;
    readonly recall: number | null;
    readonly f1: number | null;
    readonly rule: CalibrationRule;
  } | null;
  /** F1-maximising threshold chosen ON THE TEST SCORES (optimistic; see oracleThreshold). */
  readonly oracle: {
    readonly threshold: number;
    readonly precision: number;
    readonly recall: number;
    readonly f1: number;
  } | null;
  /** One sentence per null above explaining why it could not be computed. */
  readonly notes: readonly string[];
}

/**
 * All evaluation metrics of one test run. Every value is in [0, 1] or null where it is not
 * defined for the data (e.g. AUROC with one class) - never a made-up 0; `notes` says why.
 * Throws DatasetError on inconsistent inputs (lengths, sizes, NaN) and ConfigError on bad options.
 */
export function computeMetrics(input: MetricsInput): MetricsReport {
  const notes: string[] = [];
  const counts = checkScoresLabels(input.imageScores, input.imageLabels, 'test image scores');
  const both = counts.positives > 0 && counts.negatives > 0;

  let imageAuroc: number | null = null;
  if (both) imageAuroc = auroc(input.imageScores, input.imageLabels);
  else notes.push(`image AUROC: test labels are all ${counts.positives === 0 ? 'normal' : 'anomalous'}`);

  let ap: number | null = null;
  let oracle: MetricsReport['oracle'] = null;
  if (counts.positives > 0) {
    ap = averagePrecision(input.imageScores, input.imageLabels);
    const o = oracleThreshold(input.imageScores, input.imageLabels);
    // With >= 1 anomalous sample the oracle exists and, its threshold being a test score, predicts
    // >= 1 sample anomalous, so precision, recall and F1 are all defined.
    if (o !== null && o.precision !== null && o.recall !== null && o.f1 !== null) {
      oracle = { threshold: o.threshold, precision: o.precision, recall: o.recall, f1: o.f1 };
    }
  } else {
    notes.push('image AP and oracle threshold: no anomalous test image');
  }

  let calibrated: MetricsReport['calibrated'] = null;
  if (input.validationNormalScores !== undefined) {
    const rule = input.calibration ?? DEFAULT_CALIBRATION;
    const threshold = calibrateThreshold(input.validationNormalScores, rule);
    const m = metricsAtThreshold(input.imageScores, input.imageLabels, threshold);
    calibrated = { threshold, precision: m.precision, recall: m.recall, f1: m.f1, rule };
    if (m.precision === null) notes.push('calibrated precision: no test image scores at or above the calibrated threshold');
    if (m.recall === null) notes.push('calibrated recall: no anomalous test image');
  } else {
    if (input.calibration !== undefined) {
      throw new ConfigError('a calibration rule was given without validationNormalScores; pass the validation normal scores');
    }
    notes.push('calibrated threshold: no validation normal scores given');
  }

  let pixel: MetricsReport['pixel'] = { auroc: null, aurocMaxAbsError: null, aupro: null };
  if (input.maps !== undefined && input.masks !== undefined) {
    const pc = checkMapsMasks(input.maps, input.masks);
    if (pc.positives > 0 && pc.negatives > 0) {
      const pa = pixelAuroc(input.maps, input.masks, input.pixelAuroc);
      pixel = {
        auroc: pa.auroc,
        aurocMaxAbsError: pa.maxAbsError,
        aupro: aupro(input.maps, input.masks, input.proFprLimit ?? DEFAULT_PRO_FPR_LIMIT),
      };
    } else {
      notes.push(`pixel AUROC and AU-PRO: ${pc.positives === 0 ? 'no defect pixel in the masks' : 'no defect-free pixel'}`);
    }
  } else if (input.maps !== undefined || input.masks !== undefined) {
    throw new ConfigError('pixel metrics need both maps and masks; got only ' + (input.maps !== undefined ? 'maps' : 'masks'));
  } else {
    notes.push('pixel metrics: no maps/masks given');
  }

  return { image: { auroc: imageAuroc, ap }, pixel, calibrated, oracle, notes };
}
