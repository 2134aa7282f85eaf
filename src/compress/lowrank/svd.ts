// Truncated SVD of a weight matrix W (K×N) into two factors (K×r)(r×N), each carrying √σ so both stay well scaled.
// The decomposition is ml-matrix's (Golub–Kahan–Reinsch, ported from JAMA).
import { Matrix, SVD } from 'ml-matrix';

export interface RankChoice {
  /** keep the smallest rank whose singular values hold this fraction of Σσ² */
  energy?: number;
  /** keep this fraction of min(K, N) singular values */
  ratio?: number;
}

export interface Factors {
  rank: number;
  /** K×r, row-major */
  left: Float32Array;
  /** r×N, row-major */
  right: Float32Array;
  /** fraction of Σσ² the kept values hold */
  energyKept: number;
  singularValues: number[];
}

/** The rank for these singular values (descending). With both criteria, the smaller rank wins. */
export function chooseRank(sigma: readonly number[], choice: RankChoice): number {
  const full = sigma.length;
  let r = full;
  if (choice.energy !== undefined) {
    const total = sigma.reduce((a, s) => a + s * s, 0);
    let acc = 0;
    r = 0;
    while (total > 0 && r < full && acc / total < choice.energy) { acc += sigma[r] * sigma[r]; r++; }
    r = Math.max(1, r);
  }
  if (choice.ratio !== undefined) r = Math.min(r, Math.max(1, Math.round(choice.ratio * full)));
  return r;
}

/** Factors a K×N row-major matrix. Throws RangeError on non-finite values (the caller skips such weights). */
export function truncatedFactors(w: Float32Array, k: number, n: number, choice: RankChoice): Factors {
  if (w.length !== k * n) throw new RangeError(`truncatedFactors: ${w.length} values for ${k}×${n}`);
  if (!w.every(Number.isFinite)) throw new RangeError('truncatedFactors: the matrix holds inf or NaN');
  const rows: number[][] = [];
  for (let i = 0; i < k; i++) rows.push(Array.from(w.subarray(i * n, (i + 1) * n)));
  const svd = new SVD(new Matrix(rows), { autoTranspose: true });
  const sigma = svd.diagonal;
  const rank = chooseRank(sigma, choice);
  const U = svd.leftSingularVectors, V = svd.rightSingularVectors;
  const left = new Float32Array(k * rank), right = new Float32Array(rank * n);
  for (let j = 0; j < rank; j++) {
    const s = Math.sqrt(sigma[j]);
    for (let i = 0; i < k; i++) left[i * rank + j] = U.get(i, j) * s;
    for (let c = 0; c < n; c++) right[j * n + c] = V.get(c, j) * s;
  }
  const total = sigma.reduce((a, x) => a + x * x, 0);
  const kept = sigma.slice(0, rank).reduce((a, x) => a + x * x, 0);
  return { rank, left, right, energyKept: total > 0 ? kept / total : 1, singularValues: sigma };
}
