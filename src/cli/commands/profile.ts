import type { Argv, CommandModule } from 'yargs';
import { errorMessage } from '../../errors.js';
import { profileDevice } from '../../profile/index.js';
import { defaultTargetDirs, loadTargets } from '../../targets/load.js';
import { evaluateTarget, matchTarget, type TargetVerdict } from '../../targets/match.js';
import type { DeviceProfile, MatchedTarget } from '../../types.js';
import { formatTable, printJson } from '../output.js';

export interface ProfileReport {
  v: 1;
  profile: DeviceProfile;
  /** Absent when no target (not even a fallback) fits; `matchError` then says why. */
  match?: MatchedTarget;
  matchError?: string;
  /** Every target's verdict, most specific first (only with explain). */
  verdicts?: TargetVerdict[];
}

export interface ProfileCommandOptions {
  root?: string;
  targetsDir?: string;
  explain?: boolean;
  skipSystemInformation?: boolean;
}

/** Profiles the device and matches it to a target; returns data, prints nothing. */
export async function runProfile(opts: ProfileCommandOptions = {}): Promise<ProfileReport> {
  const profile = await profileDevice({ root: opts.root, skipSystemInformation: opts.skipSystemInformation });
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
    p.thermal.throttled === undefined ? 'throttling unknown' : p.thermal.throttled ? 'THROTTLED now' : 'not throttled',
  ].join(', ');
  const rows: Array<[string, string]> = [
    ['device', p.id],
    ['board', or(p.board)],
    ['arch', p.arch],
    ['cpu', cpu],
    ['isa', p.cpu.isa.length ? p.cpu.isa.join(' ') : 'unknown'],
    ['memory', `${gib(p.memory.totalMB)} total, ${gib(p.memory.availableMB)} available`],
    ['thermal', thermal],
    ['accelerators', p.accelerators.length ? p.accelerators.join(', ') : 'none seen'],
    ['os', or(p.os)],
    ['runtime', `node ${p.runtime.node}, onnxruntime ${or(p.runtime.onnxruntime, 'not found')} (${p.runtime.providers.join(', ')})`],
    ['target', r.match ? `${r.match.target.name}${r.match.fallback ? ' (FALLBACK)' : ''}` : `none: ${r.matchError}`],
  ];
  if (r.match) {
    const s = r.match.target.space;
    rows.push(['  try', `quant ${s.quant.join(', ')}; threads ${s.threads.join(', ')} (default ${r.match.target.defaults.threads})`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  if (r.match && (r.match.fallback || r.verdicts)) lines.push('', 'why:', ...r.match.reasons.map((x) => `  ${x}`));
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
}

export const profileCommand: CommandModule<object, Args> = {
  command: 'profile',
  describe: 'Show this device\'s hardware profile and the target it matches',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', describe: 'print the profile and match as JSON' })
      .option('explain', { type: 'boolean', describe: 'say why the target matched, and how every other target fared' })
      .option('targets', { type: 'string', describe: 'an extra folder of target files (its files replace built-ins of the same name)' })
      .option('root', { type: 'string', describe: 'read /proc, /sys and /etc under this folder instead of / (for recorded device trees)' }) as unknown as Argv<Args>,
  handler: async (argv) => {
    const report = await runProfile({ root: argv.root, targetsDir: argv.targets, explain: argv.explain });
    if (argv.json) printJson(report);
    else process.stdout.write(formatProfile(report) + '\n');
  },
};
