// A small scatter chart as inline SVG (no scripts, no network assets): points with tooltips, optional lines.

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface Point {
  x: number;
  y: number;
  label: string;
  /** Series name; points of one series share a colour. */
  series: string;
}

export interface Line {
  points: Array<{ x: number; y: number; label: string }>;
  name: string;
}

export interface ScatterSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  points: Point[];
  lines?: Line[];
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

/** Round, readable tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9)) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function extent(values: number[], padFrac: number, zeroBased: boolean): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (zeroBased) lo = Math.min(0, lo);
  if (hi === lo) {
    const d = Math.abs(hi) * 0.05 || 1;
    return [lo - d, hi + d];
  }
  const pad = (hi - lo) * padFrac;
  return [zeroBased && lo === 0 ? 0 : lo - pad, hi + pad];
}

export function scatterSvg(spec: ScatterSpec): string {
  const W = spec.width ?? 760;
  const H = spec.height ?? 360;
  // The legend sits in the right margin so it never covers a point.
  const m = { l: 64, r: 180, t: 28, b: 48 };
  const all = [...spec.points, ...(spec.lines ?? []).flatMap((l) => l.points)].filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(spec.title)}">`;
  const title = `<text x="${W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(spec.title)}</text>`;
  if (!all.length) return `${head}${title}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#777">no data with both a latency and a quality figure</text></svg>`;
  const [x0, x1] = extent(all.map((p) => p.x), 0.08, true);
  const [y0, y1] = extent(all.map((p) => p.y), 0.1, false);
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? String(Number(v.toFixed(2))) : String(Number(v.toPrecision(3))));
  const parts: string[] = [head, title];
  if (spec.lines?.length) parts.push(`<rect x="${W - m.r + 10}" y="${m.t + 6 + 14 * new Set(spec.points.map((p) => p.series)).size}" width="8" height="8" fill="none" stroke="#444"/><text x="${W - m.r + 22}" y="${m.t + 14 + 14 * new Set(spec.points.map((p) => p.series)).size}" font-size="11">merged Pareto front</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#ccc"/>`);
  for (const t of ticks(x0, x1)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="#555"/><text x="${sx(t)}" y="${H - m.b + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    parts.push(`<line x1="${m.l - 4}" x2="${m.l}" y1="${sy(t)}" y2="${sy(t)}" stroke="#555"/><text x="${m.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle" font-size="12">${esc(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(spec.yLabel)}</text>`);
  for (const l of spec.lines ?? []) {
    const pts = l.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    parts.push(`<polyline class="front" fill="none" stroke="#444" stroke-dasharray="4 3" points="${pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"><title>${esc(l.name)}</title></polyline>`);
    for (const p of pts) parts.push(`<rect class="front-point" x="${(sx(p.x) - 4).toFixed(1)}" y="${(sy(p.y) - 4).toFixed(1)}" width="8" height="8" fill="none" stroke="#444"><title>${esc(`${l.name}: ${p.label}`)}</title></rect>`);
  }
  const series = [...new Set(spec.points.map((p) => p.series))];
  for (const p of spec.points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const c = PALETTE[series.indexOf(p.series) % PALETTE.length];
    parts.push(`<circle class="point" cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="4.5" fill="${c}" fill-opacity="0.75"><title>${esc(p.label)}</title></circle>`);
  }
  series.forEach((s, i) => {
    const y = m.t + 10 + i * 14;
    parts.push(`<circle cx="${W - m.r + 14}" cy="${y}" r="4" fill="${PALETTE[i % PALETTE.length]}"/><text x="${W - m.r + 22}" y="${y + 4}" font-size="11">${esc(s.length > 26 ? `${s.slice(0, 25)}…` : s)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
