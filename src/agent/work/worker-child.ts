// The work process: runs one task (tasks.ts) for the agent and exits. It also exits when the agent goes away
// (the IPC channel closes), so a killed agent leaves no orphans behind.
import { errorMessage } from '../../errors.js';
import type { FromChild, ToChild } from './protocol.js';

const ac = new AbortController();
const send = (m: FromChild) => new Promise<void>((r) => (process.send ? process.send(m, () => r()) : r()));

process.on('disconnect', () => {
  ac.abort(new Error('agent went away'));
  process.exit(0);
});

process.on('message', (m: ToChild) => {
  if (m.kind === 'abort') {
    ac.abort(new Error(m.reason));
    return;
  }
  if (m.kind !== 'run') return;
  void (async () => {
    try {
      const { TASKS } = await import('./tasks.js');
      const fn = TASKS[m.task];
      if (!fn) throw new Error(`unknown task '${m.task}'`);
      let lastProgress = 0;
      const value = await fn(m.args, {
        signal: ac.signal,
        onProgress: (p) => {
          // The agent throttles too; this only keeps IPC quiet for chatty passes.
          const now = Date.now();
          if (now - lastProgress < 100 && p.pct < 100) return;
          lastProgress = now;
          void send({ kind: 'progress', progress: { step: p.step, pct: p.pct, ...(p.etaS !== undefined ? { etaS: p.etaS } : {}) } });
        },
      });
      await send({ kind: 'done', value });
    } catch (e) {
      const err = e as { code?: unknown; name?: unknown };
      await send({
        kind: 'error',
        message: errorMessage(e),
        ...(typeof err?.code === 'string' ? { code: err.code } : {}),
        ...(typeof err?.name === 'string' ? { name: err.name } : {}),
      });
    }
    process.exit(0);
  })();
});
