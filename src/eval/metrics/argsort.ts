/**
 * Stable ascending argsort of a Float32Array by LSD radix sort (two 16-bit passes) on the
 * order-preserving integer image of the IEEE-754 bits. O(n) time, 16 bytes per element, no
 * comparator callbacks: sorting millions of pixel scores with an index comparator would take
 * seconds, this takes tens of milliseconds. -0 is treated as +0 (they are equal scores).
 */
export function argsortFloat32(values: Float32Array): Uint32Array {
  const n = values.length;
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  let keys = new Uint32Array(n);
  let idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let b = bits[i];
    if (b === 0x80000000) b = 0;
    // Negative floats: flip all bits (reverses their order); positive: set the sign bit.
    keys[i] = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    idx[i] = i;
  }
  let keys2 = new Uint32Array(n);
  let idx2 = new Uint32Array(n);
  const count = new Uint32Array(65536);
  for (const shift of [0, 16]) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(keys[i] >>> shift) & 0xffff]++;
    let sum = 0;
    for (let b = 0; b < 65536; b++) {
      const c = count[b];
      count[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      const dst = count[(k >>> shift) & 0xffff]++;
      keys2[dst] = k;
      idx2[dst] = idx[i];
    }
    [keys, keys2] = [keys2, keys];
    [idx, idx2] = [idx2, idx];
  }
  return idx;
}
