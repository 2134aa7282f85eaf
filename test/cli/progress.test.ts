// The CLI progress output: a redrawn bar with ETA on a terminal, plain step lines in a log or pipe.
import t from 'tap';
import { progressReporter } from '../../src/cli/progress.js';

/** A stand-in for process.stderr: records what is written; `isTTY`/`columns` as a terminal or a pipe reports them. */
function fakeStream(tty: boolean, columns?: number): { stream: NodeJS.WriteStream; writes: string[] } {
  const writes: string[] = [];
  const stream = { isTTY: tty, columns, write: (s: string) => { writes.push(s); return true; } } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

t.test('on a TTY: one redrawn line with a bar, the percentage, the step and the ETA, fitted to the width', async (t) => {
  const { stream, writes } = fakeStream(true, 80);
  let now = 1000;
  const { onProgress, done } = progressReporter({ stream, now: () => now });
  onProgress({ step: 'measure int8 t1', pct: 25, etaS: 41.2, detail: '1 measured' });
  t.equal(writes.length, 1);
  const line = writes[0];
  t.match(line, /^\r\[######\.{18}\]  25% ETA 42s measure int8 t1 1 measured/, 'bar of 24 cells, a quarter filled, ETA rounded up');
  t.notMatch(line, /\n/, 'redrawn in place, never a new line');
  t.equal(line.length, 1 + 79, 'padded to the terminal width minus one, so the cursor never wraps');

  now += 50;
  onProgress({ step: 'measure int8 t1', pct: 30, etaS: 30 });
  t.equal(writes.length, 1, 'within 100 ms of the last draw, the same step is not redrawn');
  now += 60;
  onProgress({ step: 'measure int8 t1', pct: 50, etaS: 20 });
  t.equal(writes.length, 2, 'after 100 ms it is');
  t.match(writes[1], /\[#{12}\.{12}\]  50% ETA 20s measure int8 t1/);
  onProgress({ step: 'confirm int8 t1', pct: 60 });
  t.equal(writes.length, 3, 'a new step is drawn at once');
  t.notMatch(writes[2], /ETA/, 'no ETA when none is known');

  onProgress({ step: 'a step with a very long name that does not fit on an eighty column terminal, not even close to it', pct: 70, etaS: 5 });
  t.equal(writes[3].length, 80, 'a long line is cut at the width');
  t.match(writes[3], /  70% ETA 5s a step with/, 'the step name is what gets cut, not the ETA');

  done();
  t.match(writes.at(-1), /^\r {79}\r$/, 'done() clears the bar');
});

t.test('not a TTY: one plain line per step, no bar, no carriage returns', async (t) => {
  const { stream, writes } = fakeStream(false);
  const { onProgress, done } = progressReporter({ stream });
  onProgress({ step: 'prepare int8', pct: 5, etaS: 100, detail: '1 of 3 model(s)' });
  onProgress({ step: 'prepare int8', pct: 9, etaS: 90 });
  onProgress({ step: 'measure fp32 t1', pct: 40 });
  done();
  t.same(writes, ['… prepare int8 (1 of 3 model(s))\n', '… measure fp32 t1\n']);
});

t.test('quiet: nothing at all', async (t) => {
  const { stream, writes } = fakeStream(true, 80);
  const { onProgress, done } = progressReporter({ stream, quiet: true });
  onProgress({ step: 'x', pct: 50, etaS: 3 });
  done();
  t.same(writes, []);
});
