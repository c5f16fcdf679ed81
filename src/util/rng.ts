import seedrandom from 'seedrandom';

/** Serializable state of an Rng, stored in checkpoints so a resumed run draws the same numbers. */
export type RngState = seedrandom.State.Arc4;

/**
 * Seeded random source used for everything stochastic in the project (splits, augmentation,
 * initialisation seeds). One `--seed` makes a run reproducible: derive child generators with
 * `fork(label)` so that adding draws in one component does not shift another's stream.
 */
export class Rng {
  private prng: seedrandom.StatefulPRNG<seedrandom.State.Arc4>;
  readonly seed: string;

  constructor(seed: number | string, state?: RngState) {
    this.seed = String(seed);
    this.prng = (state
      ? seedrandom('', { state })
      : seedrandom(this.seed, { state: true })) as seedrandom.StatefulPRNG<seedrandom.State.Arc4>;
  }

  /** Independent child stream, deterministic in (parent seed, label). */
  fork(label: string): Rng {
    return new Rng(`${this.seed}/${label}`);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng.double();
  }

  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.prng.double();
  }

  /** Integer in [lo, hi) (hi exclusive, like numpy's randint). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.prng.double() * (hi - lo));
  }

  /** Standard normal via Box-Muller. */
  normal(mean = 0, std = 1): number {
    let u = 0;
    while (u === 0) u = this.prng.double();
    const v = this.prng.double();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  bool(p = 0.5): boolean {
    return this.prng.double() < p;
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.choice on an empty list');
    return items[this.int(0, items.length)];
  }

  /** Fisher-Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** A 31-bit integer seed for tfjs ops that take `seed` (tf.randomNormal etc.). */
  tfSeed(): number {
    return this.int(0, 2 ** 31 - 1);
  }

  state(): RngState {
    return this.prng.state();
  }

  static fromState(seed: number | string, state: RngState): Rng {
    return new Rng(seed, state);
  }
}
