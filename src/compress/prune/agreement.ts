// How closely a pruned model's outputs follow the original's over many batches, accumulated so no batch is kept:
// cosine and SQNR over all elements of each output, top-1 agreement over rows of the last axis.
import { toNumbers, type PlainTensor } from '../../measure/plain-tensor.js';

export interface Agreement {
  /** worst output's cosine similarity */
  cosine: number;
  /** worst output's 10·log10(Σref² / Σ(ref − test)²) */
  sqnrDb: number;
  /** worst output's argmax agreement over the last axis, when it has more than one element */
  top1Agreement?: number;
}

interface Sums { dot: number; rr: number; tt: number; err: number; same: number; rows: number; bad: number }

export class AgreementSums {
  private readonly sums = new Map<string, Sums>();

  add(ref: Record<string, PlainTensor>, test: Record<string, PlainTensor>, names = Object.keys(ref)): void {
    for (const name of names) {
      const r = ref[name], t = test[name];
      if (!r || !t) continue;
      const a = toNumbers(r), b = toNumbers(t);
      const s = this.sums.get(name) ?? { dot: 0, rr: 0, tt: 0, err: 0, same: 0, rows: 0, bad: 0 };
      if (a.length !== b.length) { s.bad++; this.sums.set(name, s); continue; }
      for (let i = 0; i < a.length; i++) {
        const x = a[i], y = b[i];
        if (!Number.isFinite(x) || !Number.isFinite(y)) { if (!Object.is(x, y)) s.bad++; continue; }
        s.dot += x * y; s.rr += x * x; s.tt += y * y; s.err += (x - y) * (x - y);
      }
      const last = r.dims[r.dims.length - 1] ?? 1;
      if (last > 1 && a.length % last === 0) {
        for (let row = 0; row < a.length / last; row++) {
          if (argmax(a, row * last, last) === argmax(b, row * last, last)) s.same++;
          s.rows++;
        }
      }
      this.sums.set(name, s);
    }
  }

  summary(): Agreement | undefined {
    if (this.sums.size === 0) return undefined;
    let cosine = 1, sqnrDb = Infinity, top1: number | undefined;
    for (const s of this.sums.values()) {
      const cos = s.bad ? 0 : s.err === 0 ? 1 : s.rr === 0 || s.tt === 0 ? 0 : s.dot / Math.sqrt(s.rr * s.tt);
      cosine = Math.min(cosine, cos);
      sqnrDb = Math.min(sqnrDb, s.bad ? -Infinity : s.err === 0 ? Infinity : 10 * Math.log10(s.rr / s.err));
      if (s.rows > 0) top1 = Math.min(top1 ?? 1, s.same / s.rows);
    }
    return { cosine, sqnrDb, top1Agreement: top1 };
  }
}

function argmax(a: Float64Array, start: number, len: number): number {
  let best = start;
  for (let i = start + 1; i < start + len; i++) if (a[i] > a[best]) best = i;
  return best - start;
}
