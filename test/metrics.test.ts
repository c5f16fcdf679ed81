import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, DatasetError } from '../src/errors.js';
import {
  aupro,
  auroc,
  averagePrecision,
  calibrateThreshold,
  computeMetrics,
  labelComponents8,
  metricsAtThreshold,
  oracleThreshold,
  parseCalibrationRule,
  parseScoresCsv,
  pixelAuroc,
  precisionRecallCurve,
  proCurve,
  rocCurve,
  type AnomalyMap,
  type DefectMask,
} from '../src/eval/metrics/index.js';
import { argsortFloat32 } from '../src/eval/metrics/argsort.js';

const FIX = join(import.meta.dirname, 'fixtures', 'metrics');
const TOL = 1e-6;

interface At {
  threshold: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
}
interface ImageCase {
  name: string;
  scores: number[];
  labels: number[];
  auroc: number | null;
  ap: number | null;
  roc?: { fpr: number[]; tpr: number[]; thresholds: number[] };
  pr?: { precision: number[]; recall: number[]; thresholds: number[] };
  oracle: At | null;
  atThreshold: At[];
}
interface CalCase {
  normals: number[];
  quantile: Record<string, number>;
  max: number;
  meanStd3?: number;
}
interface PixelCase {
  name: string;
  width: number;
  height: number;
  maps: number[][];
  masks: (number[] | null)[];
  pixelAuroc: number;
  regions8: number;
  regions4: number;
  aupro: Record<string, number>;
  aupro4conn: number;
  proCurve: { fpr: number[]; pro: number[] };
}

function load<T>(file: string): T[] {
  return (JSON.parse(readFileSync(join(FIX, file), 'utf8')) as { cases: T[] }).cases;
}
const imageCases = load<ImageCase>('image.json');
const calCases = load<CalCase>('calibration.json');
const pixelCases = load<PixelCase>('pixel.json');

function expectClose(actual: ArrayLike<number>, expected: readonly number[], tol = TOL): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol);
}
function expectNullableClose(actual: number | null, expected: number | null): void {
  if (expected === null) expect(actual).toBeNull();
  else {
    expect(actual).not.toBeNull();
    expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(TOL);
  }
}

function pixelInputs(c: PixelCase): { maps: AnomalyMap[]; masks: (DefectMask | null)[] } {
  const { width, height } = c;
  return {
    maps: c.maps.map((m, i) => ({ width, height, data: Float32Array.from(m), id: `${c.name}/${i}` })),
    masks: c.masks.map((m) => (m === null ? null : { width, height, data: Uint8Array.from(m) })),
  };
}

describe('image level vs scikit-learn fixtures (with ties)', () => {
  for (const c of imageCases) {
    it(c.name, () => {
      if (c.auroc === null) {
        expect(() => auroc(c.scores, c.labels)).toThrow(ConfigError);
        expect(() => rocCurve(c.scores, c.labels)).toThrow(/AUROC is undefined/);
      } else {
        expect(Math.abs(auroc(c.scores, c.labels) - c.auroc)).toBeLessThanOrEqual(TOL);
        const roc = rocCurve(c.scores, c.labels);
        expectClose(roc.fpr, c.roc!.fpr);
        expectClose(roc.tpr, c.roc!.tpr);
        expect(roc.thresholds[0]).toBe(Infinity);
        expectClose(roc.thresholds.subarray(1), c.roc!.thresholds, 0);
      }
      if (c.ap === null) {
        expect(() => averagePrecision(c.scores, c.labels)).toThrow(ConfigError);
      } else {
        expect(Math.abs(averagePrecision(c.scores, c.labels) - c.ap)).toBeLessThanOrEqual(TOL);
        const pr = precisionRecallCurve(c.scores, c.labels);
        expectClose(pr.precision, c.pr!.precision);
        expectClose(pr.recall, c.pr!.recall);
        expectClose(pr.thresholds, c.pr!.thresholds, 0);
      }
      const o = oracleThreshold(c.scores, c.labels);
      if (c.oracle === null) expect(o).toBeNull();
      else {
        expect(o!.threshold).toBe(c.oracle.threshold);
        expectNullableClose(o!.precision, c.oracle.precision);
        expectNullableClose(o!.recall, c.oracle.recall);
        expectNullableClose(o!.f1, c.oracle.f1);
      }
      for (const a of c.atThreshold) {
        const m = metricsAtThreshold(c.scores, c.labels, a.threshold);
        expectNullableClose(m.precision, a.precision);
        expectNullableClose(m.recall, a.recall);
        expectNullableClose(m.f1, a.f1);
      }
    });
  }
});

describe('tie rule and edge cases', () => {
  it('counts a tied (anomalous, normal) pair as one half, as scikit-learn', () => {
    // A wrong tie rule (order by index, or strict >) gives 0, 1, 0.75 or 1.0 here.
    expect(auroc([0.5, 0.5], [1, 0])).toBe(0.5);
    expect(auroc([0.5, 0.5], [0, 1])).toBe(0.5);
    expect(auroc([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0])).toBe(0.875);
    // The order of samples inside a tie group must not matter.
    expect(auroc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])).toBe(0.875);
    // AP uses one precision for the whole tie group: 0.5 * 1 + 0.5 * 2/3 whatever the order
    // (ranking the tied anomaly first would give 1, last 0.5 * 1 + 0.5 * 2/3 only by luck).
    expect(averagePrecision([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0])).toBeCloseTo(5 / 6, 12);
    expect(averagePrecision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])).toBeCloseTo(5 / 6, 12);
  });

  it('score >= threshold is anomalous', () => {
    const m = metricsAtThreshold([0.2, 0.5, 0.7], [0, 1, 1], 0.5);
    expect([m.tp, m.fp, m.tn, m.fn]).toEqual([2, 0, 1, 0]);
    const none = metricsAtThreshold([0.2, 0.5], [0, 1], 0.9);
    expect(none.precision).toBeNull(); // 0/0, not a fake 0
    expect(none.recall).toBe(0);
    expect(none.f1).toBe(0);
  });

  it('oracle breaks F1 ties toward the lower threshold (higher recall)', () => {
    // F1 = 2/3 both at threshold 4 (P=1, R=1/2) and at threshold 1 (P=1/2, R=1).
    const o = oracleThreshold([4, 3, 2, 1], [1, 0, 0, 1])!;
    expect(o.threshold).toBe(1);
    expect(o.recall).toBe(1);
    expect(o.f1).toBeCloseTo(2 / 3, 15);
  });

  it('rejects bad inputs with clear errors', () => {
    expect(() => auroc([0.1, 0.2], [0, 1, 1])).toThrow(DatasetError);
    expect(() => auroc([0.1, 0.2], [0, 1, 1])).toThrow(/2 scores but 3 labels/);
    expect(() => auroc([0.1, NaN], [0, 1])).toThrow(/index 1 is NaN/);
    expect(() => averagePrecision([0.1, Infinity], [0, 1])).toThrow(DatasetError);
    expect(() => auroc([0.1, 0.2], [0, 2])).toThrow(/must be 0 \(normal\) or 1/);
    expect(() => auroc([], [])).toThrow(DatasetError);
    expect(() => auroc([0.1, 0.2], [1, 1])).toThrow(/all 2 samples are anomalous.*AUROC is undefined/);
    expect(() => auroc([0.1, 0.2], [0, 0])).toThrow(ConfigError);
  });
});

describe('calibrated threshold (validation normals only)', () => {
  it('matches NumPy quantile / mean+3*std (ddof=1) / max', () => {
    for (const c of calCases) {
      for (const [q, v] of Object.entries(c.quantile)) {
        expect(Math.abs(calibrateThreshold(c.normals, { kind: 'quantile', q: Number(q) }) - v)).toBeLessThanOrEqual(1e-12);
      }
      const mx = calibrateThreshold(c.normals, { kind: 'max' });
      expect(mx).toBeGreaterThan(c.max); // every validation normal is accepted under score >= threshold
      expect(mx - c.max).toBeLessThan(1e-12);
      if (c.meanStd3 !== undefined) {
        expect(Math.abs(calibrateThreshold(c.normals, { kind: 'meanStd', k: 3 }) - c.meanStd3)).toBeLessThanOrEqual(1e-12);
      } else expect(() => calibrateThreshold(c.normals, { kind: 'meanStd', k: 3 })).toThrow(DatasetError);
    }
    expect(calibrateThreshold(calCases[3].normals)).toBe(calCases[3].quantile['0.99']); // default rule
  });

  it('never looks at test scores or labels', () => {
    const val = [0.1, 0.2, 0.25, 0.3, 0.32];
    const a = computeMetrics({ imageScores: [0.1, 0.9, 0.4], imageLabels: [0, 1, 1], validationNormalScores: val });
    const b = computeMetrics({ imageScores: [5, 6, 7, 8], imageLabels: [1, 1, 0, 0], validationNormalScores: val });
    expect(a.calibrated!.threshold).toBe(b.calibrated!.threshold);
    expect(a.calibrated!.threshold).toBe(calibrateThreshold(val));
    const c = computeMetrics({ imageScores: [0.1, 0.9, 0.4], imageLabels: [0, 1, 1], validationNormalScores: [...val, 0.6] });
    expect(c.calibrated!.threshold).not.toBe(a.calibrated!.threshold);
    // Precision/recall/F1 of the calibrated report are those at that threshold on the test set.
    const m = metricsAtThreshold([0.1, 0.9, 0.4], [0, 1, 1], a.calibrated!.threshold);
    expect([a.calibrated!.precision, a.calibrated!.recall, a.calibrated!.f1]).toEqual([m.precision, m.recall, m.f1]);
    expect(a.calibrated!.rule).toEqual({ kind: 'quantile', q: 0.99 });
  });

  it('validates rules', () => {
    expect(() => calibrateThreshold([1, 2], { kind: 'quantile', q: 1.5 })).toThrow(ConfigError);
    expect(() => calibrateThreshold([], { kind: 'max' })).toThrow(DatasetError);
    expect(() => calibrateThreshold([1, NaN], { kind: 'max' })).toThrow(/index 1/);
    expect(parseCalibrationRule('quantile:0.95')).toEqual({ kind: 'quantile', q: 0.95 });
    expect(parseCalibrationRule('mean+std')).toEqual({ kind: 'meanStd', k: 3 });
    expect(parseCalibrationRule('max')).toEqual({ kind: 'max' });
    expect(() => parseCalibrationRule('median')).toThrow(ConfigError);
  });
});

describe('pixel level vs scikit-learn / official MVTec AD compute_pro fixtures', () => {
  for (const c of pixelCases) {
    it(c.name, () => {
      const { maps, masks } = pixelInputs(c);
      const exact = pixelAuroc(maps, masks);
      expect(Math.abs(exact.auroc - c.pixelAuroc)).toBeLessThanOrEqual(TOL);
      expect(exact.maxAbsError).toBe(0);
      for (const bins of [16, 1024]) {
        const b = pixelAuroc(maps, masks, { method: 'binned', bins });
        expect(Math.abs(b.auroc - c.pixelAuroc)).toBeLessThanOrEqual(b.maxAbsError + 1e-12);
      }
      for (const [limit, v] of Object.entries(c.aupro)) {
        expect(Math.abs(aupro(maps, masks, Number(limit)) - v)).toBeLessThanOrEqual(TOL);
      }
      // 4-connectivity would give a different value (the fixture asserts they differ by > 1e-4).
      expect(Math.abs(aupro(maps, masks) - c.aupro4conn)).toBeGreaterThan(1e-4);
      const curve = proCurve(maps, masks);
      expectClose(curve.fpr, c.proCurve.fpr);
      expectClose(curve.pro, c.proCurve.pro);
      let regions = 0;
      for (const m of masks) if (m !== null) regions += labelComponents8(m.data, m.width, m.height).count;
      expect(regions).toBe(c.regions8);
    });
  }

  it('labels components with 8-connectivity', () => {
    // prettier-ignore
    const mask = Uint8Array.from([
      1, 0, 0, 0, 1,
      0, 1, 0, 0, 1,
      0, 0, 0, 0, 0,
      1, 1, 0, 1, 0,
    ]);
    const cc = labelComponents8(mask, 5, 4);
    expect(cc.count).toBe(4);
    expect(Array.from(cc.sizes)).toEqual([0, 2, 2, 2, 1]);
    expect(Array.from(cc.labels)).toEqual([1, 0, 0, 0, 2, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 3, 3, 0, 4, 0]);
  });

  it('argsortFloat32 is a stable ascending argsort (negatives, -0, ties)', () => {
    const v = Float32Array.from([0.5, -1, 0, -0, 3e38, -3e38, 0.5, 1e-40, -1e-40, -1, 0.25]);
    const idx = Array.from(argsortFloat32(v));
    const ref = Array.from(v.keys()).sort((a, b) => v[a] - v[b] || a - b);
    expect(idx).toEqual(ref);
  });

  it('names the image on size mismatch and NaN', () => {
    const map = (w: number, h: number, id?: string): AnomalyMap => ({ width: w, height: h, data: new Float32Array(w * h), id });
    const mask = (w: number, h: number): DefectMask => ({ width: w, height: h, data: new Uint8Array(w * h).fill(1) });
    expect(() => pixelAuroc([map(4, 4), map(4, 4, 'screw/test/thread_side/003')], [null, mask(4, 3)])).toThrow(
      /mask at index 1 \(screw\/test\/thread_side\/003\) is 4x3 but its anomaly map is 4x4/,
    );
    expect(() => aupro([map(4, 4)], [null, null])).toThrow(/1 anomaly maps but 2 masks/);
    const bad = map(3, 2, 'x');
    bad.data[4] = NaN;
    expect(() => pixelAuroc([bad], [mask(3, 2)])).toThrow(/index 0 \(x\): value NaN at pixel \(x=1, y=1\)/);
    expect(() => aupro([map(2, 2)], [null])).toThrow(ConfigError);
    expect(() => aupro([map(2, 2)], [mask(2, 2)], 0)).toThrow(ConfigError);
  });
});

describe('computeMetrics', () => {
  it('reports every metric and nulls with reasons', () => {
    const c = pixelCases[0];
    const { maps, masks } = pixelInputs(c);
    const img = imageCases[1];
    const r = computeMetrics({
      imageScores: img.scores,
      imageLabels: img.labels,
      maps,
      masks,
      validationNormalScores: [0.1, 0.2, 0.3],
      calibration: { kind: 'max' },
    });
    expect(Math.abs(r.image.auroc! - img.auroc!)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(r.image.ap! - img.ap!)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(r.pixel.auroc! - c.pixelAuroc)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(r.pixel.aupro! - c.aupro['0.3'])).toBeLessThanOrEqual(TOL);
    expect(r.oracle!.threshold).toBe(img.oracle!.threshold);
    expect(r.calibrated!.rule).toEqual({ kind: 'max' });
    expect(r.calibrated!.threshold).toBeGreaterThan(0.3);
    expect(r.notes).toEqual([]);

    const n = computeMetrics({ imageScores: [0.1, 0.2], imageLabels: [0, 0] });
    expect(n.image).toEqual({ auroc: null, ap: null });
    expect(n.pixel).toEqual({ auroc: null, aurocMaxAbsError: null, aupro: null });
    expect(n.oracle).toBeNull();
    expect(n.calibrated).toBeNull();
    expect(n.notes.join('\n')).toMatch(/all normal/);
    expect(() => computeMetrics({ imageScores: [0.1], imageLabels: [1], maps })).toThrow(ConfigError);
  });
});

describe('scores CSV and experiments/evaluate.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adbench-metrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses CRLF, quoted ids, any column order, and names file:line on errors', () => {
    const t = parseScoresCsv('\ufeffLabel,id,score\r\n1,"bottle/a,""x""",0.9\r\n0,b,.5\r\n\r\n', 'f.csv');
    expect(t.ids).toEqual(['bottle/a,"x"', 'b']);
    expect(Array.from(t.scores)).toEqual([0.9, 0.5]);
    expect(Array.from(t.labels)).toEqual([1, 0]);
    expect(() => parseScoresCsv('id,score\na,1\n', 'f.csv')).toThrow(/f\.csv:1: header has no 'label' column/);
    expect(() => parseScoresCsv('id,score,label\na,1,0\nb,abc,1\n', 'f.csv')).toThrow(/f\.csv:3: score 'abc' is not a finite number/);
    expect(() => parseScoresCsv('id,score,label\na,NaN,0\n', 'f.csv')).toThrow(DatasetError);
    expect(() => parseScoresCsv('id,score,label\na,1,2\n', 'f.csv')).toThrow(/f\.csv:2: label '2'/);
    expect(() => parseScoresCsv('id,score,label\na,1\n', 'f.csv')).toThrow(/f\.csv:2: 2 fields/);
    expect(() => parseScoresCsv('id,score,label\na,1,0\na,2,1\n', 'f.csv')).toThrow(/f\.csv:3: id 'a' already appears on line 2/);
    expect(() => parseScoresCsv('id,score,label\n', 'f.csv')).toThrow(/no data rows/);
  });

  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const p = spawn('npx', ['tsx', 'experiments/evaluate.ts', ...args], { cwd: join(import.meta.dirname, '..') });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('runs end to end (--json, text, errors exit 2)', async () => {
    const c = imageCases.find((k) => k.name === 'ties_1dec_n40')!;
    const good = join(dir, 'scores.csv');
    writeFileSync(good, 'id,score,label\r\n' + c.scores.map((s, i) => `"img ${i}",${s},${c.labels[i]}`).join('\r\n') + '\r\n');
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'id,score,label\na,0.5,1\nb,oops,0\n');
    const [json, text, err, missing] = await Promise.all([
      run(['--scores', good, '--json']),
      run(['--scores', good]),
      run(['--scores', bad]),
      run(['--scores', join(dir, 'nope.csv')]),
    ]);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as { auroc: number; ap: number; oracle: At };
    expect(Object.keys(out)).toEqual(['auroc', 'ap', 'oracle']);
    expect(Math.abs(out.auroc - c.auroc!)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(out.ap - c.ap!)).toBeLessThanOrEqual(TOL);
    expect(out.oracle.threshold).toBe(c.oracle!.threshold);
    expect(Math.abs(out.oracle.f1! - c.oracle!.f1!)).toBeLessThanOrEqual(TOL);
    expect(Object.keys(out.oracle)).toEqual(['threshold', 'precision', 'recall', 'f1']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/AUROC: 0\.\d{4}/);
    expect(text.stdout).toMatch(/oracle threshold/);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/^error: .*bad\.csv:3: score 'oops' is not a finite number/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error: cannot read scores file .*nope\.csv/);
  });
});
