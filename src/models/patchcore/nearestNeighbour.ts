/**
 * Paper eq. 7 re-weighting (anomalib's version, softmax form to avoid exp overflow, anomalib
 * #324): s = (1 - softmax_0(-‖m* - N_b(m*)‖)) · s*, evaluated for one image's most anomalous
 * patch. `neighbourDistances` are distances from that test patch to the b nearest bank vectors of
 * its nearest bank vector m* (the first one is m* itself).
 */
export function reweightedScore(maxPatchScore: number, neighbourDistances: number[]): number {
  // Weight = 1 - exp(d0) / sum_j exp(d_j)  with the same sign convention as the paper.
  const mx = Math.max(...neighbourDistances);
  const exps = neighbourDistances.map((d) => Math.exp(d - mx));
  const total = exps.reduce((a, b) => a + b, 0);
  return (1 - exps[0] / total) * maxPatchScore;
}
