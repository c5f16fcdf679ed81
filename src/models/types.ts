import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import type { Rng } from '../util/rng.js';

/** How a source keeps its pixels between batches (batch() always returns float32 in [0, 1]). */
export type PixelStorage = 'uint8' | 'float32';

/**
 * A set of preprocessed images served in batches, so methods never hold a whole category in
 * memory as tensors. Batches are NHWC float32 RGB in [0, 1], already resized/cropped to the
 * method's input size, whatever the storage (uint8 sources convert per batch: k/255).
 */
export interface ImageSource {
  readonly ids: readonly string[];
  readonly length: number;
  readonly height: number;
  readonly width: number;
  /** Storage of the pixels (absent = float32); informational, batch() is the same either way. */
  readonly storage?: PixelStorage;
  /** Images [start, end) as a new tensor; the caller disposes it. */
  batch(start: number, end: number): tf.Tensor4D;
}

export type LogFn = (line: string) => void;

/** What a method gets from the run besides its config. */
export interface FitContext {
  rng: Rng;
  log: LogFn;
  /** Run folder (checkpoints live in `${runDir}/checkpoints`). */
  runDir: string;
  /** Normal images held out of train: for model selection and threshold calibration only. */
  validation?: ImageSource;
  resume?: boolean;
  /** The run's category (see MethodEnv.category); undefined outside a run. */
  category?: string;
  /** Optional cost meter started/stopped around the training phase. */
  meter?: { start(phase: string): void; stop(phase: string): void | Promise<void> };
}

export interface Prediction {
  /** Image anomaly scores [N]; higher = more anomalous. */
  scores: tf.Tensor1D;
  /** Anomaly maps [N, H, W] at the input resolution. */
  maps: tf.Tensor3D;
}

/** Per-call options of predict(). */
export interface PredictOptions {
  /**
   * Seeded stream for stochastic scorers (the method's protocol says `stochastic: true`); a pure
   * function of (run seed, set, batch), so repeated scoring gives the same numbers. Deterministic
   * scorers ignore it.
   */
  rng?: Rng;
}

/** A trained (or fitted) detector. */
export interface AnomalyDetector {
  fit(train: ImageSource, ctx: FitContext): Promise<void>;
  /** Scores a batch; runs inside tf.tidy, returns new tensors the caller disposes. */
  predict(images: tf.Tensor4D, opts?: PredictOptions): Prediction;
  /** Networks that run at inference (for parameter counts and MACs). */
  modules(): Module[];
  /** Everything needed to score again later (weights, memory bank), written atomically. */
  save(dir: string): Promise<void>;
  load(dir: string): Promise<void>;
  /** Free variables and cached tensors. */
  dispose(): void;
  /** Short facts for the report, e.g. memory-bank size or "random-init backbone". */
  describe(): Record<string, string | number | boolean>;
}
