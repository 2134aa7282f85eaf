// A scatter chart as an inline SVG string: no script, no fonts or images to fetch. Pure.

export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  /** drawn on top of the plain points, in this order of precedence */
  role?: 'front' | 'chosen' | 'baseline' | 'predicted';
  /** shown on hover (SVG <title>) */
  detail?: string;
}

export interface ScatterOptions {
  width?: number;
  height?: number;
  xLabel: string;
  yLabel: string;
  /** a vertical line (the latency budget) */
  xLine?: { at: number; label: string };
  /** a horizontal line (the quality floor) */
  yLine?: { at: number; label: string };
  /** join the 'front' and 'chosen' points, sorted by x */
  connectFront?: boolean;
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** About `count` round tick values covering [lo, hi] (1, 2, 5 × 10^k steps). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

const COLORS = { plain: '#9aa5b1', front: '#1f6feb', chosen: '#1a7f37', baseline: '#8250df', line: '#cf222e', floor: '#bf8700' };

export function scatterSvg(points: readonly ScatterPoint[], o: ScatterOptions): string {
  const W = o.width ?? 760, H = o.height ?? 420;
  const m = { l: 64, r: 24, t: 20, b: 52 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xs = [...finite.map((p) => p.x), ...(o.xLine ? [o.xLine.at] : [])];
  const ys = [...finite.map((p) => p.y), ...(o.yLine ? [o.yLine.at] : [])];
  const pad = (lo: number, hi: number, top = 0.06) => { const d = hi - lo || Math.abs(hi) * 0.1 || 1; return [lo - d * 0.06, hi + d * top] as const; };
  const [x0, x1] = xs.length ? pad(Math.min(0, ...xs), Math.max(...xs)) : [0, 1];
  // More room above: the best candidates sit at the top, with the chosen one's label.
  const [y0, y1] = ys.length ? pad(Math.min(...ys), Math.max(...ys), 0.15) : [0, 1];
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" style="max-width:${W}px;height:auto" role="img" aria-label="${escapeXml(`${o.yLabel} against ${o.xLabel}`)}" font-family="system-ui, sans-serif" font-size="12">`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#d0d7de"/>`);
  for (const t of niceTicks(x0, x1, 8)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" y1="${m.t}" x2="${sx(t).toFixed(1)}" y2="${m.t + ph}" stroke="#eaeef2"/>`);
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" fill="#57606a">${escapeXml(fmt(t))}</text>`);
  }
  for (const t of niceTicks(y0, y1, 6)) {
    parts.push(`<line x1="${m.l}" y1="${sy(t).toFixed(1)}" x2="${m.l + pw}" y2="${sy(t).toFixed(1)}" stroke="#eaeef2"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" fill="#57606a">${escapeXml(fmt(t))}</text>`);
  }
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle" fill="#24292f">${escapeXml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#24292f">${escapeXml(o.yLabel)}</text>`);
  if (o.yLine) {
    const y = sy(o.yLine.at).toFixed(1);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="${COLORS.floor}" stroke-dasharray="4 4"/>`);
    parts.push(`<text x="${m.l + pw - 4}" y="${Number(y) - 4}" text-anchor="end" fill="${COLORS.floor}">${escapeXml(o.yLine.label)}</text>`);
  }
  if (o.xLine) {
    const x = sx(o.xLine.at).toFixed(1);
    parts.push(`<line class="budget" x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="${COLORS.line}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    // Written along the line, halfway down: the top holds the best points and the bottom the quality floor's label.
    parts.push(`<text transform="translate(${Number(x) - 5} ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="${COLORS.line}">${escapeXml(o.xLine.label)}</text>`);
  }
  if (o.connectFront) {
    const front = finite.filter((p) => p.role === 'front' || p.role === 'chosen').sort((a, b) => a.x - b.x);
    if (front.length > 1) parts.push(`<polyline class="front" fill="none" stroke="${COLORS.front}" stroke-width="1.5" points="${front.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`);
  }
  const order = { predicted: -1, undefined: 0, baseline: 1, front: 2, chosen: 3 } as Record<string, number>;
  for (const p of [...finite].sort((a, b) => order[String(a.role)] - order[String(b.role)])) {
    const cx = sx(p.x).toFixed(1), cy = sy(p.y).toFixed(1);
    const title = `<title>${escapeXml(p.detail ?? `${p.label}: ${fmt(p.x)}, ${fmt(p.y)}`)}</title>`;
    if (p.role === 'chosen') {
      parts.push(`<g class="chosen"><circle cx="${cx}" cy="${cy}" r="9" fill="none" stroke="${COLORS.chosen}" stroke-width="2.5"/><circle cx="${cx}" cy="${cy}" r="4.5" fill="${COLORS.chosen}">${title}</circle>`);
      const below = Number(cy) - m.t < 24;
      parts.push(`<text x="${Number(cx) + 12}" y="${Number(cy) + (below ? 20 : -8)}" fill="${COLORS.chosen}" font-weight="600">${escapeXml(p.label)}</text></g>`);
    } else if (p.role === 'predicted') {
      parts.push(`<circle class="predicted" cx="${cx}" cy="${cy}" r="3.5" fill="none" stroke="${COLORS.plain}" stroke-dasharray="2 1.5">${title}</circle>`);
    } else if (p.role === 'baseline') {
      parts.push(`<rect class="baseline" x="${Number(cx) - 5}" y="${Number(cy) - 5}" width="10" height="10" fill="${COLORS.baseline}">${title}</rect>`);
    } else {
      parts.push(`<circle class="${p.role ?? 'trial'}" cx="${cx}" cy="${cy}" r="${p.role === 'front' ? 5 : 4}" fill="${p.role === 'front' ? COLORS.front : COLORS.plain}" fill-opacity="0.85">${title}</circle>`);
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}
