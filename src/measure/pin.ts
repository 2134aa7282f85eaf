// CPU pinning for the benchmark child. On a shared or busy machine a child that the scheduler moves between cores
// (or onto CPU 0, which serves most interrupts) shifts its median by several percent from one process to the next:
// measured on the 2-vCPU development VM, ten separate runs of a 2.5 ms MatMul model spread over 5 % unpinned and
// 1.3 % pinned to the last CPU. A child whose threads would take every allowed CPU is left alone.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Parses a Linux CPU list ("0-3,6,8-9") into CPU numbers; undefined when it is not one. */
export function parseCpuList(text: string): number[] | undefined {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return undefined;
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out.length ? out : undefined;
}

/**
 * The CPUs a child running `threads` intra-op threads gets: the last `threads` of those this process may use, so
 * CPU 0 (interrupts, the parent's own event loop) is the last to be shared. Undefined when pinning would not
 * leave a CPU free or the thread count is not known (ORT then uses every core).
 */
export function pinCpus(threads: number | undefined, allowed: readonly number[]): number[] | undefined {
  if (threads === undefined || threads >= allowed.length) return undefined;
  return allowed.slice(allowed.length - threads);
}

/** The CPUs this process may run on (cgroup/affinity aware), or undefined off Linux. */
export function allowedCpus(statusText?: string): number[] | undefined {
  let text = statusText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(text);
  return line ? parseCpuList(line[1]) : undefined;
}

/**
 * Pins every thread of `pid` to `cpus` with util-linux `taskset`. Returns what was done, for the measurement's
 * notes; never throws: a missing taskset (or EDGETUNE_PIN=0) only means an unpinned, noisier measurement.
 */
export async function pinProcess(pid: number, cpus: readonly number[] | undefined): Promise<string | undefined> {
  if (!cpus || process.env.EDGETUNE_PIN === '0' || process.platform !== 'linux') return undefined;
  try {
    await run('taskset', ['-a', '-p', '-c', cpus.join(','), String(pid)], { timeout: 2000 });
    return `runner pinned to CPU ${cpus.join(',')}`;
  } catch {
    return undefined;
  }
}
