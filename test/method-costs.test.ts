import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { countCostRow, disposeCostNetworks, type CostRow } from '../src/energy/costsTable.js';
import { paperReference } from '../src/eval/paperReference.js';
import { patchcoreCostSpec } from '../src/models/patchcore/costSpec.js';
import { getMethod, methodNames } from '../src/registry.js';

// Each method's cost spec and paper rows are reachable from its definition; Table 6 numbers
// (TABLE6.md) are reproduced through the registry, as experiments/costs.ts prints them.

const run = promisify(execFile);
/** Table 6 truncates parameters to two decimals ("Model Size (MB)" = M params). */
const truncated = (m: number): number => Math.floor(m * 100 + 1e-9) / 100;

beforeAll(async () => {
  await initBackend('wasm');
});

describe('one place per method', () => {
  it('every method has its cost spec and paper rows on its definition; the spec takes its paper figures from paper-reference.json', () => {
    const expected: Record<string, { params: number; gmac: number }> = {
      patchcore: { params: 68.88, gmac: 9.24 }, draem: { params: 97.42, gmac: 198.44 }, riad: { params: 28.8, gmac: 77.2 }, glass: { params: 70.46, gmac: 7.615 },
      cutpaste: { params: 11.77, gmac: 2.38 },
      patchsvdd: { params: 0.45, gmac: 0.12 },
    };
    expect(methodNames().sort()).toEqual(Object.keys(expected).sort());
    for (const [name, t6] of Object.entries(expected)) {
      const m = getMethod(name);
      const spec = m.costSpec!;
      expect(spec.method).toBe(name);
      const ref = m.paperReference();
      expect(ref.paperId).toBe(m.paperId);
      expect(ref.costs).toMatchObject({ modelSizeParamsM: t6.params, gmac: t6.gmac });
      expect([spec.paperParamsM, spec.paperGmac]).toEqual([t6.params, t6.gmac]);
      expect(ref.groups.global?.auroc).toBeGreaterThan(50);
      expect(ref.category('bottle')?.auroc).toEqual(paperReference(m.paperId).category('bottle')?.auroc);
    }
    expect(getMethod('patchcore').costSpec).toBe(patchcoreCostSpec); // counted in energy-backbones.test.ts
  });

  it("DRAEM's Table 6 row: 198.44 GMAC (ptflops, both networks at 256²; true MACs 197.95) and 97.42 M parameters", async () => {
    const spec = getMethod('draem').costSpec!;
    expect(spec.inputSize).toBe(256);
    const nets = await spec.build();
    try {
      // Every term (conv outputs, bias/BN/ReLU/upsampling elements, pooling inputs) scales with
      // the pixel count and 64 divides by the segmenter's 2⁵, so 64² counts exactly 1/16 of 256².
      const r = countCostRow(spec, nets, 64);
      expect(Math.abs(r.gmacPtflops * 16 - 198.44)).toBeLessThan(0.005);
      expect(Math.abs(r.gmac * 16 - 197.95)).toBeLessThan(0.005);
      expect(Math.round(r.paramsMUnique * 1e6)).toBe(69_048_579 + 28_374_146);
      expect(truncated(r.paramsMPaperRule)).toBe(97.42);
      expect(r.ratioGmacPtflops).toBeCloseTo((r.gmacPtflops / 198.44), 6);
    } finally {
      disposeCostNetworks(nets);
    }
  });

  it('experiments/costs.ts reads the registry: RIAD --json row (77.20 GMAC at 256² = 64 × the 32² count, 28.80 M); planned methods are named', async () => {
    const r = await run('npx', ['tsx', 'experiments/costs.ts', 'riad', '--input-size', '32', '--json', '--backend', 'wasm'], { timeout: 120_000 });
    const rows = JSON.parse(r.stdout) as CostRow[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ method: 'riad', paperParamsM: 28.8, paperGmac: 77.2 });
    expect(rows[0].gmacPtflops * 64).toBeCloseTo(77.2, 1);
    expect(rows[0].gmac * 64).toBeCloseTo(54.52, 1);
    expect(truncated(rows[0].paramsMPaperRule)).toBe(28.8);
    const err = await run('npx', ['tsx', 'experiments/costs.ts', 'mspba'], { timeout: 60_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/mspba.*not implemented yet/);
  });
});
