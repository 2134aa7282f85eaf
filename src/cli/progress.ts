import type { Progress, ProgressFn } from '../types.js';

/**
 * A progress bar on a TTY (stderr), plain step lines otherwise; silent when `quiet`.
 * Returns the callback to hand to long operations, and `done()` to clear the bar.
 */
export function progressReporter(opts: { quiet?: boolean; stream?: NodeJS.WriteStream; now?: () => number } = {}): { onProgress: ProgressFn; done: () => void } {
  const stream = opts.stream ?? process.stderr;
  const clock = opts.now ?? Date.now;
  if (opts.quiet) return { onProgress: () => {}, done: () => {} };
  let lastStep = '';
  let lastDraw = 0;
  const tty = Boolean(stream.isTTY);
  const onProgress = (p: Progress) => {
    if (!tty) {
      if (p.step !== lastStep) stream.write(`… ${p.step}${p.detail ? ` (${p.detail})` : ''}\n`);
      lastStep = p.step;
      return;
    }
    // Redraw at most every 100 ms within one step: a tight loop of updates must not flood a slow serial console.
    const now = clock();
    if (now - lastDraw < 100 && p.pct < 100 && p.step === lastStep) return;
    lastDraw = now;
    lastStep = p.step;
    const width = 24;
    const filled = Math.round((Math.max(0, Math.min(100, p.pct)) / 100) * width);
    const eta = p.etaS !== undefined && Number.isFinite(p.etaS) ? ` ETA ${Math.ceil(p.etaS)}s` : '';
    // The ETA goes before the step: a long step name is what gets cut on a narrow terminal, never the ETA.
    const text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.pct.toFixed(0).padStart(3)}%${eta} ${p.step}${p.detail ? ` ${p.detail}` : ''}`;
    stream.write(`\r${text.slice(0, (stream.columns || 100) - 1).padEnd((stream.columns || 100) - 1)}`);
  };
  const done = () => { if (tty && lastStep) stream.write('\r' + ' '.repeat((stream.columns || 100) - 1) + '\r'); };
  return { onProgress, done };
}

/** An AbortSignal that fires on SIGINT/SIGTERM, so Ctrl-C cancels long work cleanly. */
export function signalOnInterrupt(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', onSig); process.off('SIGTERM', onSig); } };
}
