/**
 * Einsum for backends that lack it (wasm 4.22). tfjs' einsum accepts at most two operands and no
 * repeated index within an operand, so every equation is one of:
 *   one operand:  sum over the indices missing from the output, then transpose;
 *   two operands: a batched matrix product. Indices are classified as
 *       batch    (in A, B and the output)      -> matMul batch axis
 *       contract (in A and B, not the output)  -> matMul inner axis K
 *       freeA / freeB (in one operand + output) -> matMul rows / cols
 *       private (in one operand only)          -> summed out of that operand first
 *   so  out = transpose(reshape(matMul(A[batch, freeA, contract], B[batch, contract, freeB]))).
 * This uses only transpose/reshape/sum/matMul (all native on wasm), with no broadcast temporaries
 * (tfjs' cpu kernel multiplies broadcast operands, which costs memory proportional to all indices).
 */
import * as tf from '@tensorflow/tfjs';
import { asTensor, input, mark } from './kernel-util.js';

function transposeIfNeeded(t: tf.Tensor, perm: number[]): tf.Tensor {
  return perm.every((p, i) => p === i) ? t : tf.transpose(t, perm);
}

function prod(xs: number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Pure tf-op einsum; caller provides the tidy scope. */
export function einsumViaMatMul(equation: string, tensors: tf.Tensor[]): tf.Tensor {
  const { allDims, summedDims, idDims } = tf.backend_util.decodeEinsumEquation(equation, tensors.length);
  tf.backend_util.checkEinsumDimSizes(allDims.length, idDims, tensors);
  const nOut = allDims.length - summedDims.length; // output indices are allDims[0 .. nOut)
  const size: number[] = new Array<number>(allDims.length).fill(1);
  tensors.forEach((t, i) => idDims[i].forEach((d, ax) => (size[d] = t.shape[ax])));

  // Sum out indices that only this operand carries and the output does not keep.
  const reduceOwn = (t: tf.Tensor, dims: number[], others: number[]): [tf.Tensor, number[]] => {
    const axes = dims.map((d, ax) => (d >= nOut && !others.includes(d) ? ax : -1)).filter((ax) => ax >= 0);
    if (axes.length === 0) return [t, dims];
    return [tf.sum(t, axes), dims.filter((_, ax) => !axes.includes(ax))];
  };

  if (tensors.length === 1) {
    const [t, dims] = reduceOwn(tensors[0], idDims[0], []);
    return transposeIfNeeded(t, Array.from({ length: nOut }, (_, d) => dims.indexOf(d)));
  }

  const [a, da] = reduceOwn(tensors[0], idDims[0], idDims[1]);
  const [b, db] = reduceOwn(tensors[1], idDims[1], idDims[0]);
  const batch = da.filter((d) => db.includes(d) && d < nOut);
  const contract = da.filter((d) => db.includes(d) && d >= nOut);
  const freeA = da.filter((d) => !db.includes(d));
  const freeB = db.filter((d) => !da.includes(d));
  const sz = (ds: number[]) => prod(ds.map((d) => size[d]));

  const at = transposeIfNeeded(a, [...batch, ...freeA, ...contract].map((d) => da.indexOf(d)));
  const bt = transposeIfNeeded(b, [...batch, ...contract, ...freeB].map((d) => db.indexOf(d)));
  const a3 = tf.reshape(at, [sz(batch), sz(freeA), sz(contract)]) as tf.Tensor3D;
  const b3 = tf.reshape(bt, [sz(batch), sz(contract), sz(freeB)]) as tf.Tensor3D;
  const order = [...batch, ...freeA, ...freeB];
  const r = tf.reshape(tf.matMul(a3, b3), order.map((d) => size[d]));
  return transposeIfNeeded(r, Array.from({ length: nOut }, (_, d) => order.indexOf(d)));
}

interface EinsumAttrs {
  equation: string;
}

const einsum: tf.KernelFunc = ({ inputs, attrs }) => {
  const { equation } = attrs as unknown as EinsumAttrs;
  // tf.einsum passes its tensors as an array (keys '0', '1').
  const infos: tf.TensorInfo[] = Array.isArray(inputs) ? (inputs as tf.TensorInfo[]) : Object.keys(inputs).sort((p, q) => Number(p) - Number(q)).map((k) => input(inputs, k));
  return tf.tidy(() => einsumViaMatMul(equation, infos.map((t) => asTensor(t))));
};

/**
 * Gradient of einsum (tfjs-core 4.22 has none, on any backend). For operand T with the other operand
 * U and output O:  dT[keep] = einsum(O, U -> keep)(dy, U), where keep = T's indices that occur in O
 * or U; indices private to T (summed out in the forward pass) get that gradient broadcast along them.
 * Backend-independent (plain tf.einsum / reshape / broadcastTo), so registering it is safe everywhere.
 */
const einsumGrad: tf.GradConfig['gradFunc'] = (dy, saved, attrs) => {
  const equation = (attrs as unknown as EinsumAttrs).equation.replace(/\s/g, '');
  const [lhs, out] = equation.split('->');
  const terms = lhs.split(',');
  const g = dy as tf.Tensor;
  const grads: Record<string, () => tf.Tensor> = {};
  terms.forEach((term, i) => {
    grads[String(i)] = () => {
      const t = saved[i];
      const others = terms.filter((_, j) => j !== i);
      const keep = term.split('').filter((ch) => out.includes(ch) || others.some((o) => o.includes(ch))).join('');
      const eq = `${[out, ...others].join(',')}->${keep}`;
      const r = tf.einsum(eq, g, ...saved.filter((_, j) => j !== i));
      if (keep.length === term.length) return r;
      const expanded = tf.reshape(r, term.split('').map((ch, ax) => (keep.includes(ch) ? t.shape[ax] : 1)));
      return tf.broadcastTo(expanded, t.shape);
    };
  });
  return grads;
};

export function einsumGradConfig(): tf.GradConfig {
  return mark<tf.GradConfig>({ kernelName: tf.Einsum, saveAllInputs: true, gradFunc: einsumGrad });
}

export function einsumKernelConfig(backendName: string): tf.KernelConfig {
  return mark<tf.KernelConfig>({ kernelName: tf.Einsum, backendName, kernelFunc: einsum });
}
