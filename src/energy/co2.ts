import type { EnergyDomain, MeasurementMethod } from './samplers/types.js';

/**
 * Energy unit conversions and CO2. One function derives every figure from joules so that kJ, kWh,
 * mean W and kg CO2 are consistent with each other by construction.
 */

/** The paper's carbon intensity (Section 3.3.2: CO2 = energy x 0.475 kg CO2/kWh). */
export const PAPER_CO2_KG_PER_KWH = 0.475;
/** Power usage effectiveness: facility energy / IT energy. 1.0 = IT energy only (the paper's implicit choice). */
export const DEFAULT_PUE = 1.0;

export interface Co2Options {
  /** kg CO2 per kWh; default 0.475 as the paper. */
  factorKgPerKwh?: number;
  /** Default 1.0 (printed in every report so nobody assumes otherwise). */
  pue?: number;
}

export interface EnergyFigures {
  domain: EnergyDomain;
  method: MeasurementMethod;
  /** True for the CPU-time estimate: never a measurement. */
  estimated: boolean;
  joules: number;
  kJ: number;
  kWh: number;
  /** Seconds the energy was measured over. */
  durationS: number;
  /** joules / durationS. */
  meanPowerW: number | null;
  /** kWh x factor x PUE. */
  co2Kg: number;
  co2FactorKgPerKwh: number;
  pue: number;
}

export const J_PER_KWH = 3.6e6;

export function co2Kg(kWh: number, factorKgPerKwh = PAPER_CO2_KG_PER_KWH, pue = DEFAULT_PUE): number {
  return kWh * factorKgPerKwh * pue;
}

export function energyFigures(
  joules: number,
  durationS: number,
  source: { domain: EnergyDomain; method: MeasurementMethod; estimated: boolean },
  co2: Co2Options = {},
): EnergyFigures {
  const factor = co2.factorKgPerKwh ?? PAPER_CO2_KG_PER_KWH;
  const pue = co2.pue ?? DEFAULT_PUE;
  const kWh = joules / J_PER_KWH;
  return {
    domain: source.domain,
    method: source.method,
    estimated: source.estimated,
    joules,
    kJ: joules / 1000,
    kWh,
    durationS,
    meanPowerW: durationS > 0 ? joules / durationS : null,
    co2Kg: co2Kg(kWh, factor, pue),
    co2FactorKgPerKwh: factor,
    pue,
  };
}

/** Energy above the idle baseline: gross - idle power x duration (may be negative if idle was noisy). */
export function netOfIdle(gross: EnergyFigures, idlePowerW: number): EnergyFigures {
  return energyFigures(gross.joules - idlePowerW * gross.durationS, gross.durationS, gross, {
    factorKgPerKwh: gross.co2FactorKgPerKwh,
    pue: gross.pue,
  });
}
