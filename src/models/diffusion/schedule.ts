import { ConfigError } from '../../errors.js';

/**
 * Discrete noise schedules with 0-based timesteps t = 0..T−1, as the reference code indexes them
 * (ddad.md §3, diffusionad.md §3): β_t, α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s, every product in
 * float64 (Float64Array) so that coefficients are exact before they are cast to float32 tensors.
 * ᾱ_{−1} := 1 (the "step to before t = 0" of DDAD's sampler, ddad.md §4).
 */
export interface NoiseScheduleConfig {
  kind: 'linear' | 'cosine';
  /** Number of diffusion steps T (1000 for both DDAD and DiffusionAD). */
  timesteps: number;
  /** Linear only: β_0 and β_{T−1} (1e-4 and 0.02 for both methods). */
  betaStart?: number;
  betaEnd?: number;
  /** Cosine only: offset s (0.008) and the cap on β_t (0.999), Nichol & Dhariwal 2021 eq. 17. */
  cosineOffset?: number;
  maxBeta?: number;
}

/** The schedule both DDAD (ddad.md §3) and DiffusionAD (diffusionad.md §3) train with. */
export const LINEAR_1E4_2E2_T1000: NoiseScheduleConfig = { kind: 'linear', timesteps: 1000, betaStart: 1e-4, betaEnd: 0.02 };

export class NoiseSchedule {
  readonly T: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphaBars: Float64Array;

  constructor(betas: Float64Array) {
    if (betas.length < 1) throw new ConfigError('noise schedule: needs at least one timestep');
    for (let t = 0; t < betas.length; t++) {
      if (!(betas[t] > 0 && betas[t] < 1)) throw new ConfigError(`noise schedule: β_${t} = ${betas[t]} is not in (0, 1)`);
    }
    this.T = betas.length;
    this.betas = betas;
    this.alphas = betas.map((b) => 1 - b);
    this.alphaBars = new Float64Array(this.T);
    let p = 1;
    for (let t = 0; t < this.T; t++) {
      p *= this.alphas[t];
      this.alphaBars[t] = p;
    }
  }

  static fromConfig(c: NoiseScheduleConfig): NoiseSchedule {
    if (!Number.isInteger(c.timesteps) || c.timesteps < 1) throw new ConfigError(`noise schedule: timesteps must be a positive integer, got ${c.timesteps}`);
    if (c.kind === 'linear') return new NoiseSchedule(linearBetas(c.timesteps, c.betaStart ?? 1e-4, c.betaEnd ?? 0.02));
    if (c.kind === 'cosine') return new NoiseSchedule(cosineBetas(c.timesteps, c.cosineOffset ?? 0.008, c.maxBeta ?? 0.999));
    throw new ConfigError(`noise schedule: kind must be 'linear' or 'cosine', got '${String((c as { kind: unknown }).kind)}'`);
  }

  /** ᾱ_t for t in −1..T−1 (ᾱ_{−1} = 1). */
  alphaBar(t: number): number {
    this.check(t, true);
    return t === -1 ? 1 : this.alphaBars[t];
  }

  beta(t: number): number {
    this.check(t, false);
    return this.betas[t];
  }

  private check(t: number, allowMinusOne: boolean): void {
    if (!Number.isInteger(t) || t < (allowMinusOne ? -1 : 0) || t >= this.T) {
      throw new ConfigError(`noise schedule: timestep ${t} outside ${allowMinusOne ? -1 : 0}..${this.T - 1}`);
    }
  }
}

/**
 * np.linspace(start, end, T, dtype=float64), the β of DDPM (Ho et al. 2020 §4) and of both
 * methods' code: β_i = start + i·(end − start)/(T − 1), the last value exactly `end` (numpy sets it).
 */
export function linearBetas(T: number, start: number, end: number): Float64Array {
  if (!(start > 0 && end < 1 && start <= end)) throw new ConfigError(`linear noise schedule: need 0 < betaStart ≤ betaEnd < 1, got ${start}, ${end}`);
  const out = new Float64Array(T);
  if (T === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (T - 1);
  for (let i = 0; i < T; i++) out[i] = start + i * step;
  out[T - 1] = end;
  return out;
}

/**
 * Cosine schedule (Nichol & Dhariwal 2021, eq. 17; improved-diffusion's betas_for_alpha_bar):
 * f(u) = cos²((u + s)/(1 + s)·π/2), β_i = min(1 − f((i+1)/T)/f(i/T), maxBeta), so that without the
 * cap ᾱ_t = f((t+1)/T)/f(0) exactly.
 */
export function cosineBetas(T: number, s: number, maxBeta: number): Float64Array {
  if (!(s >= 0) || !(maxBeta > 0 && maxBeta < 1)) throw new ConfigError(`cosine noise schedule: need offset ≥ 0 and 0 < maxBeta < 1, got ${s}, ${maxBeta}`);
  const f = (u: number): number => Math.cos(((u + s) / (1 + s)) * (Math.PI / 2)) ** 2;
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - f((i + 1) / T) / f(i / T), maxBeta);
  return out;
}
