/**
 * src/nn/gradControl.ts and Module.freeze: noGrad records nothing, stopGradient blocks exactly its
 * path, a frozen backbone keeps nothing on the tape (measured: tape nodes and bytes held during a
 * step), and innerGrad inside an outer variableGrads gives the closed-form / finite-difference
 * gradient, leaves the outer gradient as if its result were a constant, and does not grow memory
 * or the outer tape over iterations.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installEagerBackprop, uninstallEagerBackprop } from '../src/nn/backprop.js';
import { activeTapeLength, innerGrad, noGrad, stopGradient } from '../src/nn/gradControl.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { ReLU, Sequential } from '../src/nn/layers/sequential.js';
import { setInitSeed } from '../src/nn/init.js';
import { randn, relErr } from './helpers/numeric.js';

const arr = (t: tf.Tensor): number[] => Array.from(t.dataSync());

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
});

afterAll(() => uninstallEagerBackprop());

describe.each([
  ['wasm', true],
  ['wasm', false],
  ['cpu', true],
])('gradient controls on %s (eager backprop %s)', (backend, eager) => {
  beforeAll(async () => {
    await tf.setBackend(backend as string);
    if (eager) installEagerBackprop();
    else uninstallEagerBackprop();
  });

  it('noGrad: nothing recorded, outputs are constants, tf.grad inside has no path', () => {
    const w = tf.variable(tf.tensor1d([1, 2, 3]), true, `ng_w_${backend}_${eager}`);
    const v = tf.variable(tf.tensor1d([0.5, -1, 2]), true, `ng_v_${backend}_${eager}`);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      let inside = -1;
      let outside = -1;
      const { value, grads } = tf.variableGrads(() => {
        const y = noGrad(() => {
          const t0 = activeTapeLength();
          const r = tf.square(tf.mul(w, 2));
          inside = activeTapeLength() - t0;
          return r;
        });
        const t1 = activeTapeLength();
        const out = tf.sum(tf.mul(y, v)) as tf.Scalar;
        outside = activeTapeLength() - t1;
        return out;
      }, [w, v]);
      expect(inside).toBe(0);
      expect(outside).toBeGreaterThanOrEqual(2); // mul, sum (and what they dispatch)
      expect(value.dataSync()[0]).toBeCloseTo(4 * 0.5 - 16 + 36 * 2, 4);
      expect(Object.keys(grads)).toEqual([v.name]); // w only reached through noGrad
      expect(arr(grads[v.name])).toEqual([4, 16, 36]);
      expect(() => noGrad(() => tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.ones([2])))).toThrow(/Cannot compute gradient/);
    });
    expect(tf.memory().numTensors).toBe(before);
    w.dispose();
    v.dispose();
  });

  it('stopGradient: identity forward, its path contributes no gradient', () => {
    tf.tidy(() => {
      const x = tf.tensor1d([1.5, -2, 3]);
      // d/dx Σ x·sg(x) = sg(x) = x, not 2x
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(t, stopGradient(t))))(x);
      expect(arr(g)).toEqual([1.5, -2, 3]);
      expect(arr(stopGradient(x))).toEqual([1.5, -2, 3]);
      // GLASS's T + sg(G − T): value G, gradient to T exactly 1
      const G = tf.tensor1d([4, 5, 6]);
      const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.mul(tf.add(t, stopGradient(tf.sub(G, t))), tf.tensor1d([1, 2, 3]))))(x);
      expect(value.dataSync()[0]).toBeCloseTo(4 + 10 + 18, 5);
      expect(arr(grad)).toEqual([1, 2, 3]);
      const w = tf.variable(tf.tensor1d([1, 1]), true, `sg_w_${backend}_${eager}`);
      const u = tf.variable(tf.tensor1d([2, 2]), true, `sg_u_${backend}_${eager}`);
      const { grads } = tf.variableGrads(() => tf.sum(tf.add(stopGradient(tf.mul(w, 3)), tf.mul(u, 2))) as tf.Scalar, [w, u]);
      expect(grads[w.name]).toBeUndefined();
      expect(arr(grads[u.name])).toEqual([2, 2]);
      w.dispose();
      u.dispose();
    });
  });

  it('a frozen backbone keeps nothing on the tape; head gradients unchanged; no leak', () => {
    setInitSeed(7);
    const backbone = new Sequential<tf.Tensor4D>([
      new Conv2d(3, 16, 3, { padding: 1 }), new ReLU(), new Conv2d(16, 16, 3, { padding: 1 }), new ReLU(), new Conv2d(16, 16, 3, { padding: 1 }), new ReLU(),
    ]);
    const head = new Conv2d(16, 1, 1);
    const x = tf.tensor4d(randn(2 * 32 * 32 * 3, 5), [2, 32, 32, 3]);
    const activationBytes = 2 * 32 * 32 * 16 * 4; // one backbone activation map
    const step = () => {
      let tape = 0;
      let heldBytes = 0;
      const start = tf.memory().numBytes;
      const grads = tf.tidy(() => {
        const { value, grads: g } = tf.variableGrads(() => {
          const f = backbone.call(x);
          const out = tf.mean(tf.square(head.call(f))) as tf.Scalar;
          tape = activeTapeLength();
          heldBytes = tf.memory().numBytes - start;
          return out;
        }, [...backbone.namedParameters().map(([, v]) => v), ...head.trainableVariables()].filter((v) => v.trainable));
        value.dispose();
        return Object.fromEntries(Object.entries(g).map(([k, t]) => [k, arr(t)]));
      });
      return { tape, heldBytes, grads };
    };
    backbone.setTrainable(false); // parameters frozen, forward still on the tape
    const onTape = step();
    backbone.freeze();
    expect(backbone.isFrozen && backbone.layers[0].isFrozen).toBe(true);
    const before = tf.memory().numTensors;
    const frozen = step();
    const again = step();
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(frozen.grads).sort()).toEqual(head.trainableVariables().map((v) => v.name).sort());
    expect(frozen.grads).toEqual(onTape.grads); // same values, the backbone was constant anyway
    expect(again.grads).toEqual(frozen.grads);
    // only the head's nodes (conv, bias, square, mean); the on-tape backbone adds its 3 convs + ReLUs
    expect(frozen.tape).toBeLessThanOrEqual(onTape.tape - 6);
    // the on-tape run keeps the backbone's intermediate maps for backward; the frozen one only f
    expect(onTape.heldBytes - frozen.heldBytes).toBeGreaterThanOrEqual(2 * activationBytes);
    backbone.unfreeze();
    expect(backbone.isFrozen || !backbone.trainableVariables().length).toBe(false);
    backbone.dispose();
    head.dispose();
    x.dispose();
  });

  describe('innerGrad inside an outer step', () => {
    // D(g) = Σ tanh(g·w) with w [d,1] trainable: ∂D/∂g = (1 − tanh²(g·w)) wᵀ, closed form.
    const n = 4;
    const d = 6;
    const T = () => tf.tensor2d(randn(n * d, 21, 0.5), [n, d]);
    const D = (g: tf.Tensor, w: tf.Variable): tf.Scalar => tf.sum(tf.tanh(tf.matMul(g as tf.Tensor2D, w as tf.Variable<tf.Rank.R2>))) as tf.Scalar;
    const iterations = 5;
    const eta = 0.05;

    /**
     * The GLASS-style loop (glass.md §3 step 3); returns the final G and the outer gradient.
     * `glass`: update under noGrad and loss on T + sg(G − T), as GLASS; otherwise the update is on
     * the tape and the loss reads G directly, so any dependence of G on w would show in dw.
     */
    function run(w: tf.Variable, opts: { nested?: boolean; glass?: boolean; probe?: () => void } = {}): { G: number[]; dw: number[] } {
      return tf.tidy(() => {
        const t = T();
        let Gout: number[] = [];
        const { value, grads } = tf.variableGrads(() => {
          let G = tf.add(t, 0.1);
          for (let i = 0; i < iterations; i++) {
            const { value: v, grad } = opts.nested
              ? tf.valueAndGrad((g: tf.Tensor) => D(g, w))(G)
              : innerGrad((g: tf.Tensor) => D(g, w), G);
            // GLASS normalises the step; the plain step keeps G's dependence on w through the
            // gradient visible to a nested tf.grad (with this D the normalised one cancels it)
            const update = () => tf.tidy(() => tf.add(G, opts.glass ? tf.mul(eta, tf.div(grad, tf.add(tf.norm(grad), 1e-10))) : tf.mul(eta, grad)));
            const next = opts.glass ? noGrad(update) : update();
            G.dispose();
            v.dispose();
            grad.dispose();
            G = next;
            opts.probe?.();
          }
          Gout = arr(G);
          return opts.glass ? D(tf.add(t, stopGradient(tf.sub(G, t))), w) : D(G, w);
        }, [w]);
        value.dispose();
        return { G: Gout, dw: arr(grads[w.name]) };
      });
    }

    it('matches the closed form and a finite difference', () => {
      const w = tf.variable(tf.tensor2d(randn(d, 22), [d, 1]), true, `ig_w0_${backend}_${eager}`);
      tf.tidy(() => {
        const x = T();
        tf.variableGrads(() => {
          const r = innerGrad((g: tf.Tensor) => D(g, w), x);
          // inside the outer step: compare there (the result is a constant to the outer tape)
          const closed = tf.mul(tf.sub(1, tf.square(tf.tanh(tf.matMul(x, w as tf.Variable<tf.Rank.R2>)))), tf.transpose(w));
          expect(relErr(arr(r.grad), arr(closed))).toBeLessThan(1e-6);
          const xs = arr(x);
          const gs = arr(r.grad);
          const h = 1e-2;
          for (const k of [0, 7, 13, 23]) {
            const plus = xs.slice();
            const minus = xs.slice();
            plus[k] += h;
            minus[k] -= h;
            const fd = (D(tf.tensor2d(plus, [n, d]), w).dataSync()[0] - D(tf.tensor2d(minus, [n, d]), w).dataSync()[0]) / (2 * h);
            expect(Math.abs(fd - gs[k])).toBeLessThan(2e-3 * Math.max(1, Math.abs(gs[k])));
          }
          return tf.sum(tf.mul(D(x, w), 1)) as tf.Scalar;
        }, [w]);
      });
      w.dispose();
    });

    it('the outer gradient treats the ascent result as a constant (a nested tf.grad does not)', () => {
      const w = tf.variable(tf.tensor2d(randn(d, 23), [d, 1]), true, `ig_w1_${backend}_${eager}`);
      const inner = run(w);
      // Reference: the same final G as a plain constant.
      const reference = tf.tidy(() => {
        const G = tf.tensor2d(inner.G, [n, d]);
        const { grads } = tf.variableGrads(() => D(G, w), [w]);
        return arr(grads[w.name]);
      });
      expect(relErr(inner.dw, reference)).toBeLessThan(1e-6);
      const nested = run(w, { nested: true });
      expect(relErr(nested.G, inner.G)).toBeLessThan(1e-6); // same ascent
      expect(relErr(nested.dw, reference)).toBeGreaterThan(1e-2); // but differentiated through it
      // GLASS form: dw as for its final G taken as a constant (it enters as T + sg(G − T))
      const glass = run(w, { glass: true });
      const glassReference = tf.tidy(() => {
        const { grads } = tf.variableGrads(() => D(tf.tensor2d(glass.G, [n, d]), w), [w]);
        return arr(grads[w.name]);
      });
      expect(relErr(glass.dw, glassReference)).toBeLessThan(1e-6);
      w.dispose();
    });

    it('does not grow tensors or the outer tape over iterations, and frees everything after the step', () => {
      const w = tf.variable(tf.tensor2d(randn(d, 24), [d, 1]), true, `ig_w2_${backend}_${eager}`);
      const before = tf.memory().numTensors;
      const tensors: number[] = [];
      const tape: number[] = [];
      run(w, {
        glass: true,
        probe: () => {
          tensors.push(tf.memory().numTensors);
          tape.push(activeTapeLength());
        },
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(new Set(tensors).size).toBe(1);
      // neither the inner passes nor the (noGrad) updates add anything to the outer tape
      expect(new Set(tape).size).toBe(1);
      w.dispose();
    });

    it('works inside noGrad and restores the engine state after an error', () => {
      tf.tidy(() => {
        const x = tf.tensor1d([1, 2]);
        const r = noGrad(() => innerGrad((t: tf.Tensor) => tf.sum(tf.square(t)) as tf.Scalar, x));
        expect(arr(r.grad)).toEqual([2, 4]);
        expect(() => innerGrad(() => {
          throw new Error('boom');
        }, x)).toThrow('boom');
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(t, t)))(x);
        expect(arr(g)).toEqual([2, 4]);
      });
    });
  });
});
