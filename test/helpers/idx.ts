// The example's Fashion-MNIST t10k set as a DataSource over a slice of it, so that a test can calibrate (or
// reconstruct) on examples it never scores on.
import type { ClassificationSet } from '../../src/measure/datasets/idx.js';
import type { DataSource } from '../../src/measure/datasets/source.js';

/** Examples [from, from + count) of `set` as a labelled DataSource feeding the example model's `input`. */
export function idxSource(set: ClassificationSet, from: number, count: number): DataSource {
  if (from + count > set.count) throw new RangeError(`idxSource: [${from}, ${from + count}) is past the set's ${set.count} examples`);
  return {
    name: `fashion-mnist t10k[${from}..${from + count})`, count,
    async *batches(o = {}) {
      const bs = o.batchSize ?? 32, lim = Math.min(o.limit ?? count, count);
      for (let s = 0; s < lim; s += bs) {
        const n = Math.min(bs, lim - s), st = from + s;
        yield { feeds: { input: { dtype: 'float32', dims: [n, 1, 28, 28], data: set.images.slice(st * 784, (st + n) * 784) } }, labels: set.labels.subarray(st, st + n) };
      }
    },
  };
}
