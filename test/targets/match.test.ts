import t from 'tap';
import { EdgetuneError } from '../../src/errors.js';
import { loadTargets } from '../../src/targets/load.js';
import { evaluateTarget, matchTarget, type MatchInput } from '../../src/targets/match.js';
import type { IsaFeature, Target } from '../../src/types.js';

const targets = await loadTargets();
const dev = (arch: string, isa: IsaFeature[], board?: string): MatchInput => ({ arch, board, cpu: { isa } });

t.test('a board match beats arch- and ISA-only targets', async (t) => {
  const m = matchTarget(dev('arm64', ['neon', 'dotprod', 'fp16'], 'Raspberry Pi 5 Model B Rev 1.0'), targets);
  t.equal(m.target.name, 'raspberry-pi-5');
  t.equal(m.fallback, false);
  t.match(m.reasons[0], /board "Raspberry Pi 5 Model B Rev 1.0" contains "Raspberry Pi 5"/);
  t.match(m.reasons.join('\n'), /also matched, less specific: .*arm64-dotprod.*generic-arm64|also matched, less specific: .*generic-arm64.*arm64-dotprod/);
});

t.test('board matching is case-insensitive and covers related boards', async (t) => {
  t.equal(matchTarget(dev('arm64', ['neon'], 'raspberry pi 400 rev 1.0'), targets).target.name, 'raspberry-pi-4');
  t.equal(matchTarget(dev('arm64', ['neon'], 'Raspberry Pi Compute Module 4 Rev 1.1'), targets).target.name, 'raspberry-pi-4');
  t.equal(matchTarget(dev('arm64', ['neon'], 'Raspberry Pi Zero 2 W Rev 1.0'), targets).target.name, 'raspberry-pi-3');
  t.equal(matchTarget(dev('arm64', ['neon', 'dotprod'], 'NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super'), targets).target.name, 'jetson-orin-nano');
  t.equal(matchTarget(dev('arm64', ['neon'], 'NVIDIA Jetson Nano Developer Kit'), targets).target.name, 'jetson-nano');
});

t.test('the right arch is required even for a board match', async (t) => {
  // A 32-bit Raspberry Pi OS: the board is a Pi 4 but onnxruntime-node has no 32-bit ARM binary.
  const err = (() => { try { matchTarget(dev('arm', ['neon'], 'Raspberry Pi 4 Model B Rev 1.5'), targets); } catch (e) { return e; } })();
  t.type(err, EdgetuneError);
  t.match((err as Error).message, /no target matches this device \(arch arm, board "Raspberry Pi 4 Model B Rev 1.5"\)/);
});

t.test('an unknown board falls to the ISA target, then the generic one', async (t) => {
  const rk = matchTarget(dev('arm64', ['neon', 'dotprod', 'fp16'], 'Radxa ROCK 5B'), targets);
  t.equal(rk.target.name, 'arm64-dotprod');
  t.equal(rk.fallback, false);
  t.match(rk.reasons[0], /CPU has neon, dotprod/);
  const a53 = matchTarget(dev('arm64', ['neon'], 'Pine64 RockPro64'), targets);
  t.equal(a53.target.name, 'generic-arm64');
  t.equal(a53.fallback, false);
  t.equal(matchTarget(dev('x64', ['sse4_2', 'avx', 'avx2', 'fma', 'avx512']), targets).target.name, 'x86_64-avx2');
  t.equal(matchTarget(dev('x64', ['sse4_2', 'avx2', 'vnni']), targets).target.name, 'x86_64-vnni');
});

t.test('no match: the arch\'s fallback target, flagged, with a warning and the failed conditions', async (t) => {
  const m = matchTarget(dev('arm64', []), targets);
  t.equal(m.target.name, 'generic-arm64');
  t.equal(m.fallback, true);
  t.match(m.reasons[0], /^warning: no target matched this device; using generic-arm64/);
  t.match(m.reasons[1], /generic-arm64: CPU lacks neon/);
  const x = matchTarget(dev('x64', ['avx']), targets);
  t.equal(x.target.name, 'generic-x86_64');
  t.equal(x.fallback, true);
  t.match(x.reasons[1], /CPU lacks sse4_2/);
});

t.test('no match and no fallback for the arch: a clear error', async (t) => {
  t.throws(() => matchTarget(dev('riscv64', []), targets), /none is marked fallbackFor riscv64; add a target file/);
  t.throws(() => matchTarget(dev('arm64', []), targets.filter((x) => !x.fallbackFor)), /no target matches this device \(arch arm64\)/);
});

const synthetic = (name: string, match: Target['match']): Target => ({
  v: 1, name, match, notes: '', defaults: { threads: 'all' }, space: { quant: ['fp32'], threads: ['all'] }, priors: {}, sources: ['test'],
});

t.test('isaNone excludes; equal specificity is broken by name and said so', async (t) => {
  const list = [
    synthetic('b-no-dot', { arch: ['arm64'], isaNone: ['dotprod'] }),
    synthetic('a-no-i8mm', { arch: ['arm64'], isaNone: ['i8mm'] }),
  ];
  const withDot = matchTarget(dev('arm64', ['neon', 'dotprod']), list);
  t.equal(withDot.target.name, 'a-no-i8mm');
  t.equal(withDot.reasons.some((r) => r.includes('tied')), false, 'only one target held');
  const plain = matchTarget(dev('arm64', ['neon']), list);
  t.equal(plain.target.name, 'a-no-i8mm');
  t.match(plain.reasons.join('\n'), /tied on specificity with b-no-dot; chose a-no-i8mm by name/);
  const v = evaluateTarget(dev('arm64', ['dotprod']), list[0]);
  t.equal(v.matches, false);
  t.match(v.failed[0], /CPU has dotprod \(this target is for CPUs without\)/);
});

t.test('a target without conditions matches anything, least specifically', async (t) => {
  const any = synthetic('anything', {});
  t.same(evaluateTarget(dev('x64', []), any), { name: 'anything', matches: true, score: 0, held: [], failed: [] });
  const m = matchTarget(dev('x64', ['sse4_2']), [any, ...targets]);
  t.equal(m.target.name, 'generic-x86_64');
  t.equal(matchTarget(dev('mips', []), [any]).reasons[0], 'anything: matches any device');
});

t.test('a profile without a board fails board targets with a reason', async (t) => {
  const pi4 = targets.find((x) => x.name === 'raspberry-pi-4')!;
  const v = evaluateTarget(dev('arm64', ['neon']), pi4);
  t.equal(v.matches, false);
  t.match(v.failed.join(), /board unknown \(wants one of "Raspberry Pi 4"/);
});
