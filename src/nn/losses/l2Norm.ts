import * as tf from '@tensorflow/tfjs';

/**
 * Euclidean norm over the last axis, ‖x‖₂ = sqrt(Σ x²), with torch's gradient: x/‖x‖ and 0 where
 * ‖x‖ = 0 (torch.norm's backward masks the zero norm). Why: tfjs' sqrt gives ∞·0 = NaN at 0, and
 * an exact zero happens in practice, e.g. Patch SVDD's jittered pair clipped back onto its own
 * position at the image border (patchsvdd.md §3) makes f(p1) − f(p2) exactly 0.
 */
export function l2NormLastAxis(x: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const norm = tf.sqrt(tf.sum(tf.square(xi), -1));
    save([xi, norm]);
    return {
      value: norm,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sn] = saved;
        const safe = tf.where(tf.greater(sn, 0), sn, tf.onesLike(sn));
        return [tf.mul(sx, tf.expandDims(tf.div(dy, safe), -1))];
      },
    };
  });
  return op(x);
}
