// Printing lives here, not in handlers: handlers return data, this turns it into a table or JSON.

/** `replacer` runs after bigints become numbers (e.g. util/json.ts infinityAsString). */
export function printJson(value: unknown, replacer?: (key: string, value: unknown) => unknown): void {
  process.stdout.write(JSON.stringify(value, (k, v) => { const n = typeof v === 'bigint' ? Number(v) : v; return replacer ? replacer(k, n) : n; }, 2) + '\n');
}

/** A plain aligned text table; numbers right-aligned. */
export function formatTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmtNum(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: Array<string | number>, isHeader = false) =>
    r.map((c, i) => {
      const s = String(c ?? '');
      return !isHeader && typeof rows[0]?.[i] === 'number' ? s.padStart(widths[i]) : s.padEnd(widths[i]);
    }).join('  ').trimEnd();
  return [line(cells[0], true), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map((r) => line(r))].join('\n');
}

export function fmtNum(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a < 0.001 || a >= 1e6)) return n.toExponential(2);
  if (Number.isInteger(n)) return String(n);
  return a >= 100 ? n.toFixed(1) : a >= 1 ? n.toFixed(2) : n.toFixed(4);
}

export function fmtBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(2)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

/** Messages for humans go to stderr so that --json output on stdout stays parseable. */
export function info(msg: string): void {
  process.stderr.write(msg + '\n');
}
