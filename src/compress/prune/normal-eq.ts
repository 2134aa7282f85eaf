// Streaming least squares: accumulate XᵀX and XᵀY one row at a time (activations are never all held), then solve
// min ‖XW − Y‖² + λ‖W − W₀‖², a ridge pulled toward the current weights W₀ rather than toward zero, so that a layer
// fitted from fewer rows than unknowns stays near what it was instead of collapsing.
export class NormalEquations {
  /** XᵀX, k×k row-major; only the upper triangle is accumulated */
  readonly xtx: Float64Array;
  /** XᵀY, k×m row-major */
  readonly xty: Float64Array;
  /** Σ‖y‖², for residuals */
  yy = 0;
  rows = 0;

  constructor(readonly k: number, readonly m: number) {
    this.xtx = new Float64Array(k * k);
    this.xty = new Float64Array(k * m);
  }

  /** One row: x has k values, y has m. Zeros in x (post-ReLU activations are mostly zero) cost nothing. */
  add(x: Float64Array, y: Float64Array): void {
    const k = this.k, m = this.m, xtx = this.xtx, xty = this.xty;
    for (let i = 0; i < k; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * k;
      for (let j = i; j < k; j++) xtx[row + j] += xi * x[j];
      const yrow = i * m;
      for (let c = 0; c < m; c++) xty[yrow + c] += xi * y[c];
    }
    let yy = 0;
    for (let c = 0; c < m; c++) yy += y[c] * y[c];
    this.yy += yy;
    this.rows++;
  }

  /** XᵀX with both triangles filled. */
  private full(): Float64Array {
    const { k } = this;
    const a = Float64Array.from(this.xtx);
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) a[i * k + j] = a[j * k + i];
    return a;
  }

  /**
   * The ridge solution pulled toward `prior` (k×m). `lambda` is relative to the mean diagonal of XᵀX, so it means
   * the same whatever the activations' scale.
   */
  solve(prior: Float64Array, lambda = 1e-3): Float64Array {
    const { k, m } = this;
    const a = this.full();
    let trace = 0;
    for (let i = 0; i < k; i++) trace += a[i * k + i];
    let lam = Math.max(lambda * (trace / k), 1e-12);
    const b = new Float64Array(k * m);
    // A rank-deficient XᵀX (dead channels, fewer rows than unknowns) is made definite by the ridge; if rounding
    // still defeats the factorization, a stronger ridge is the honest fallback.
    for (let attempt = 0; attempt < 6; attempt++, lam *= 100) {
      const l = Float64Array.from(a);
      for (let i = 0; i < k; i++) l[i * k + i] += lam;
      if (!cholesky(l, k)) continue;
      const xty = this.xty;
      for (let i = 0; i < k * m; i++) b[i] = xty[i] + lam * prior[i];
      cholSolve(l, k, b, m);
      return b;
    }
    return Float64Array.from(prior);
  }

  /** Σ‖xW − y‖² over the accumulated rows, from the sums alone: tr(WᵀAW) − 2·tr(WᵀB) + Σ‖y‖². */
  sse(w: Float64Array): number {
    const { k, m } = this;
    const a = this.xtx, xty = this.xty;
    let quad = 0, lin = 0;
    // Upper triangle only: off-diagonal terms count twice.
    for (let i = 0; i < k; i++) {
      const row = i * k, wi = i * m;
      for (let c = 0; c < m; c++) lin += w[wi + c] * xty[wi + c];
      for (let j = i; j < k; j++) {
        const aij = a[row + j];
        if (aij === 0) continue;
        const wj = j * m;
        let d = 0;
        for (let c = 0; c < m; c++) d += w[wi + c] * w[wj + c];
        quad += (j === i ? 1 : 2) * aij * d;
      }
    }
    return Math.max(0, quad - 2 * lin + this.yy);
  }
}

/** In-place Cholesky of a symmetric k×k matrix (lower factor left in the lower triangle); false if not definite. */
function cholesky(a: Float64Array, k: number): boolean {
  for (let j = 0; j < k; j++) {
    const rj = j * k;
    let d = a[rj + j];
    for (let p = 0; p < j; p++) d -= a[rj + p] * a[rj + p];
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    for (let i = j + 1; i < k; i++) {
      const ri = i * k;
      let s = a[ri + j];
      for (let p = 0; p < j; p++) s -= a[ri + p] * a[rj + p];
      a[ri + j] = s / ljj;
    }
  }
  return true;
}

/** Solves (LLᵀ)X = B in place for m right-hand sides (B is k×m row-major). */
function cholSolve(l: Float64Array, k: number, b: Float64Array, m: number): void {
  for (let i = 0; i < k; i++) {
    const ri = i * k, bi = i * m;
    for (let p = 0; p < i; p++) {
      const lip = l[ri + p];
      if (lip === 0) continue;
      const bp = p * m;
      for (let c = 0; c < m; c++) b[bi + c] -= lip * b[bp + c];
    }
    const d = l[ri + i];
    for (let c = 0; c < m; c++) b[bi + c] /= d;
  }
  // Lᵀ into the upper triangle, so the backward pass reads rows rather than strided columns.
  for (let i = 0; i < k; i++) for (let p = i + 1; p < k; p++) l[i * k + p] = l[p * k + i];
  for (let i = k - 1; i >= 0; i--) {
    const bi = i * m, ri = i * k;
    for (let p = i + 1; p < k; p++) {
      const lpi = l[ri + p];
      if (lpi === 0) continue;
      const bp = p * m;
      for (let c = 0; c < m; c++) b[bi + c] -= lpi * b[bp + c];
    }
    const d = l[i * k + i];
    for (let c = 0; c < m; c++) b[bi + c] /= d;
  }
}
