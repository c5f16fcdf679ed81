import * as tf from '@tensorflow/tfjs';

/**
 * Batches prepared ahead of the training step that consumes them (the trainer's `prepareBatch`
 * hook). `take(step)` returns batch `step` and starts preparing the next `depth` steps, so their
 * asynchronous parts (texture reads, `await tensor.data()`, decoding on libuv threads) progress
 * while the trainer awaits the current step's loss. Batches are pure functions of the step, so the
 * depth changes when work happens, never what a batch holds.
 */
export class BatchQueue<B> {
  private readonly pending = new Map<number, Promise<B>>();

  constructor(
    private readonly prepare: (step: number) => B | Promise<B>,
    /** One past the last step that may be prepared. */
    private readonly end: number,
    /** Batches prepared ahead of the current one (0 = prepare each batch just before its step). */
    private readonly depth: number,
    private readonly dispose: (batch: B) => void,
  ) {}

  /** Batch `step` (prepared now if it was not prefetched); starts steps step+1 … step+depth. */
  take(step: number): Promise<B> {
    const p = this.pending.get(step) ?? this.start(step);
    this.pending.delete(step);
    for (let s = step + 1; s <= step + this.depth && s < this.end; s++) if (!this.pending.has(s)) this.start(s);
    return p;
  }

  /** Waits for batches still in flight and disposes them (end of training, early stop or error). */
  async drain(): Promise<void> {
    const left = [...this.pending.values()];
    this.pending.clear();
    for (const p of left) {
      try {
        this.dispose(await p);
      } catch {
        // A prefetched batch that failed was never needed; the error of a needed one surfaced in take().
      }
    }
  }

  private start(step: number): Promise<B> {
    // Deferred by one microtask so a synchronous prepare throws through the promise, not here.
    const p = Promise.resolve().then(() => this.prepare(step));
    p.catch(() => {}); // a rejection is reported when (and only if) the batch is taken
    this.pending.set(step, p);
    return p;
  }
}

/**
 * Disposes every tensor in a batch: the batch itself, or tensors in its arrays and object values
 * (nested). Typed arrays and other values are skipped without being walked (tf.dispose would
 * iterate a Float32Array element by element).
 */
export function disposeBatchTensors(batch: unknown, seen = new Set<unknown>()): void {
  if (batch === null || typeof batch !== 'object' || seen.has(batch)) return;
  seen.add(batch);
  if (batch instanceof tf.Tensor) {
    batch.dispose();
    return;
  }
  if (ArrayBuffer.isView(batch) || batch instanceof ArrayBuffer) return;
  const values = Array.isArray(batch) ? batch : Object.values(batch as Record<string, unknown>);
  for (const v of values) disposeBatchTensors(v, seen);
}
