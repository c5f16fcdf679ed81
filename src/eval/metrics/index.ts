/**
 * Evaluation metrics for image anomaly detection (pure TypeScript on typed arrays, no tfjs).
 * Decision rule everywhere: `score >= threshold` is anomalous. Image-level AUROC / AP / PR curve
 * reproduce scikit-learn exactly (including ties); pixel AU-PRO reproduces the official MVTec AD
 * evaluation code. See each file for the conventions and references.
 */
export { auroc, rocCurve, type RocCurve } from './roc.js';
export { averagePrecision, precisionRecallCurve, type PrecisionRecallCurve } from './averagePrecision.js';
export {
  calibrateThreshold,
  DEFAULT_CALIBRATION,
  metricsAtThreshold,
  oracleThreshold,
  parseCalibrationRule,
  type CalibrationRule,
  type ThresholdedMetrics,
} from './thresholds.js';
export { labelComponents8, type Components } from './connectedComponents.js';
export { type AnomalyMap, type DefectMask } from './maps.js';
export { pixelAuroc, DEFAULT_PIXEL_BINS, type PixelAurocOptions, type PixelAurocResult } from './pixelAuroc.js';
export { aupro, proCurve, DEFAULT_PRO_FPR_LIMIT, type ProCurve } from './pro.js';
export { computeMetrics, type MetricsInput, type MetricsReport } from './compute.js';
export { parseScoresCsv, type ScoresTable } from './scoresCsv.js';
