import type { Argv, CommandModule } from 'yargs';
import { errorMessage } from '../../errors.js';
import { profileDevice, type Profile } from '../../profile/index.js';
import { describeThrottle } from '../../profile/throttle.js';
import { peakThroughput } from '../../targets/priors.js';
import { spaceAxes } from '../../targets/space.js';
import { defaultTargetDirs, loadTargets } from '../../targets/load.js';
import { evaluateTarget, matchTarget, type TargetVerdict } from '../../targets/match.js';
import type { MatchedTarget } from '../../types.js';
import { formatTable, printJson } from '../output.js';

export interface ProfileReport {
  v: 1;
  profile: Profile;
  /** Absent when no target (not even a fallback) fits; `matchError` then says why. */
  match?: MatchedTarget;
  matchError?: string;
  /** Every target's verdict, most specific first (only with explain). */
  verdicts?: TargetVerdict[];
}

export interface ProfileCommandOptions {
  root?: string;
  stateDir?: string;
  targetsDir?: string;
  explain?: boolean;
  skipSystemInformation?: boolean;
}

/** Profiles the device and matches it to a target; returns data, prints nothing. */
export async function runProfile(opts: ProfileCommandOptions = {}): Promise<ProfileReport> {
  const profile = await profileDevice({ root: opts.root, skipSystemInformation: opts.skipSystemInformation, stateDir: opts.stateDir });
  const targets = await loadTargets(defaultTargetDirs(opts.targetsDir));
  const report: ProfileReport = { v: 1, profile };
  try {
    report.match = matchTarget(profile, targets);
  } catch (e) {
    report.matchError = errorMessage(e);
  }
  if (opts.explain) {
    report.verdicts = targets.map((t) => evaluateTarget(profile, t)).sort((a, b) => Number(b.matches) - Number(a.matches) || b.score - a.score || a.name.localeCompare(b.name));
  }
  return report;
}

const or = (v: string | number | undefined, unknown = 'unknown') => (v === undefined || v === '' ? unknown : String(v));

/** The human summary: one `key  value` line per fact, then the target, notes and (with explain) every verdict. */
export function formatProfile(r: ProfileReport): string {
  const p = r.profile;
  const gib = (mb?: number) => (mb === undefined ? 'unknown' : `${(mb / 1024).toFixed(1)} GiB`);
  const cpu = [
    or(p.cpu.model),
    p.cpu.vendor ? `(${p.cpu.vendor})` : '',
    p.cpu.cores !== undefined ? `${p.cpu.cores} ${p.cpu.cores === 1 ? 'core' : 'cores'}` : 'cores unknown',
    p.cpu.clustersMHz.length ? `max ${p.cpu.clustersMHz.join('/')} MHz` : 'max MHz unknown',
  ].filter(Boolean).join(', ').replace(', (', ' (');
  const thermal = [
    p.thermal.tempC !== undefined ? `${p.thermal.tempC} °C` : 'temperature unknown',
    p.thermal.throttleFlags ? `throttling: ${describeThrottle(p.thermal.throttleFlags)}` : 'throttling unknown',
    p.thermal.powerMode ? `power mode ${p.thermal.powerMode.name}${p.thermal.powerMode.id !== undefined ? ` (id ${p.thermal.powerMode.id})` : ''}` : '',
  ].filter(Boolean).join(', ');
  const kb = (n: number) => (n >= 1024 ? `${+(n / 1024).toFixed(1)} MiB` : `${n} KiB`);
  const clusters = p.cpu.clusters.map((c) => `${c.cpus.length}x ${c.coreType ?? 'core'}${c.maxMHz !== undefined ? ` @ ${c.maxMHz} MHz` : ''}${c.governor ? ` (${c.governor})` : ''}`);
  const caches = p.cpu.caches.map((c) => `L${c.level}${c.type === 'data' ? 'd' : c.type === 'instruction' ? 'i' : ''} ${kb(c.sizeKB)}${c.instances ? ` x${c.instances}` : ''}`);
  const swap = p.memory.swapTotalMB === undefined ? 'swap unknown' : p.memory.swapTotalMB === 0 ? 'no swap' : `swap ${gib(p.memory.swapTotalMB)} (${gib(p.memory.swapFreeMB)} free)`;
  const rows: Array<[string, string]> = [
    ['device', p.id],
    ['board', `${or(p.board)}${p.soc ? ` (SoC ${p.soc})` : ''}${p.l4t ? `, Jetson Linux ${p.l4t}` : ''}`],
    ['arch', p.arch],
    ['cpu', cpu],
    ['clusters', clusters.length ? clusters.join(' + ') : 'unknown'],
    ['caches', caches.length ? caches.join(', ') : 'unknown'],
    ['isa', p.cpu.isa.length ? p.cpu.isa.join(' ') : 'unknown'],
    ['memory', `${gib(p.memory.totalMB)} total, ${gib(p.memory.availableMB)} available, ${swap}`],
    ['disk', p.disk ? `${gib(p.disk.freeMB)} free of ${gib(p.disk.totalMB)} at ${p.disk.path}` : 'not checked'],
    ['thermal', thermal],
    ['accelerators', p.acceleratorDetails.length ? p.acceleratorDetails.map((a) => `${a.name}${a.version ? ` ${a.version}` : ''}`).join(', ') + ' (not used: CPU build)' : 'none seen'],
    ['os', or(p.os)],
    ['runtime', `node ${p.runtime.node}, onnxruntime ${or(p.runtime.onnxruntime, 'not found')} (${p.runtime.providers.join(', ')})`],
    ['target', r.match ? `${r.match.target.name}${r.match.fallback ? ' (FALLBACK)' : ''}` : `none: ${r.matchError}`],
  ];
  if (r.match) {
    const t = r.match.target;
    const axes = spaceAxes(t, p.cpu.cores ?? 1);
    rows.push(['  try', `quant ${axes.quant.join(', ')}; threads ${axes.threads.join(', ')} (default ${t.defaults.threads})`]);
    const extra = [
      axes.prune.length > 1 ? `channel prune ${axes.prune.slice(1).join(', ')}` : '',
      axes.lowrankEnergy.length > 1 ? `low-rank energy ${axes.lowrankEnergy.slice(1).join(', ')}` : '',
      t.defaults.activationType ? `int8 ${t.defaults.activationType === 'uint8' ? 'U8S8' : 'S8S8'}${t.defaults.reduceRange ? ' + reduce-range' : ''}` : '',
    ].filter(Boolean);
    if (extra.length) rows.push(['  and', extra.join('; ')]);
    const peak = peakThroughput(t, { cores: p.cpu.cores, maxMHz: Math.max(...p.cpu.clustersMHz, 0) || undefined });
    if (peak.fp32Gflops !== undefined || peak.int8Gops !== undefined) {
      rows.push(['  peak', `fp32 ${peak.fp32Gflops ?? '?'} GFLOP/s, int8 ${peak.int8Gops ?? '?'} GOP/s (theoretical, from the target's priors)`]);
    }
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  const warned = r.match?.reasons.some((x) => x.startsWith('warning:'));
  if (r.match && (r.match.fallback || warned || r.verdicts)) lines.push('', 'why:', ...r.match.reasons.map((x) => `  ${x}`));
  if (p.notes.length) lines.push('', 'notes:', ...p.notes.map((n) => `  - ${n}`));
  if (r.verdicts) {
    lines.push('', formatTable(
      ['target', 'matches', 'specificity', 'why'],
      r.verdicts.map((v) => [v.name, v.matches ? 'yes' : 'no', v.matches ? String(v.score) : '-', (v.matches ? v.held : v.failed).join('; ') || 'no conditions']),
    ));
  }
  return lines.join('\n');
}

interface Args {
  json?: boolean;
  explain?: boolean;
  targets?: string;
  root?: string;
  stateDir?: string;
}

export const profileCommand: CommandModule<object, Args> = {
  command: 'profile',
  describe: 'Show this device\'s hardware profile and the target it matches',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', describe: 'print the profile and match as JSON' })
      .option('explain', { type: 'boolean', describe: 'say why the target matched, and how every other target fared' })
      .option('targets', { type: 'string', describe: 'an extra folder of target files (its files replace built-ins of the same name)' })
      .option('root', { type: 'string', describe: 'read /proc, /sys and /etc under this folder instead of / (for recorded device trees)' })
      .option('state-dir', { type: 'string', describe: 'report the free disk space of this folder (default .edgetune-state)' }) as unknown as Argv<Args>,
  handler: async (argv) => {
    const report = await runProfile({ root: argv.root, targetsDir: argv.targets, explain: argv.explain, stateDir: argv.stateDir });
    if (argv.json) printJson(report);
    else process.stdout.write(formatProfile(report) + '\n');
  },
};
