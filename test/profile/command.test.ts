// Tests the `edgetune profile` command (src/cli/commands/profile.ts); kept here with the profile tests.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatProfile, runProfile } from '../../src/cli/commands/profile.js';
import { packageRoot } from '../../src/util/paths.js';

const fixtures = join(import.meta.dirname, '../fixtures/profile');

t.test('runProfile: profile, match and (with explain) every verdict, best first', async (t) => {
  const r = await runProfile({ root: join(fixtures, 'raspberry-pi-4'), explain: true });
  t.equal(r.v, 1);
  t.equal(r.match?.target.name, 'raspberry-pi-4');
  t.equal(r.matchError, undefined);
  t.equal(r.verdicts?.[0].name, 'raspberry-pi-4');
  t.ok(r.verdicts!.length >= 5);
  t.notOk(r.verdicts!.find((v) => v.name === 'raspberry-pi-5')!.matches);
  const text = formatProfile(r);
  t.match(text, /^board\s+Raspberry Pi 4 Model B Rev 1\.5 \(SoC BCM2711\)$/m);
  t.match(text, /^clusters\s+4x Cortex-A72 @ 1800 MHz$/m);
  t.match(text, /^cpu\s+Cortex-A72 \(ARM\), 4 cores, max 1800 MHz$/m);
  t.match(text, /^target\s+raspberry-pi-4$/m);
  t.match(text, /^memory\s+unknown total, unknown available, swap unknown$/m);
  t.match(text, /why:\n  raspberry-pi-4: arch arm64 is one of \[arm64\]; board "Raspberry Pi 4 Model B Rev 1\.5" contains "Raspberry Pi 4"/);
  t.match(text, /raspberry-pi-5\s+no\s+-\s+board "Raspberry Pi 4 Model B Rev 1\.5" contains none of/);
});

t.test('without explain: no verdict table; a fallback always says why', async (t) => {
  const plain = formatProfile(await runProfile({ root: join(fixtures, 'raspberry-pi-5') }));
  t.notMatch(plain, /why:/);
  t.notMatch(plain, /specificity/);
  const root = t.testdir({ proc: { cpuinfo: 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu lm sse2\n' } });
  const fb = await runProfile({ root });
  t.equal(fb.match?.fallback, true);
  const text = formatProfile(fb);
  t.match(text, /^target\s+generic-x86_64 \(FALLBACK\)$/m);
  t.match(text, /why:\n  warning: no target matched/);
});

t.test('no target at all is reported, not thrown', async (t) => {
  const r = await runProfile({ root: t.testdir({}) });
  t.equal(r.match, undefined);
  t.match(r.matchError, /no target matches this device \(arch unknown\)/);
  t.match(formatProfile(r), /^target\s+none: no target matches/m);
});

t.test('a user targets folder is honoured', async (t) => {
  const mine = {
    v: 1, name: 'my-pi5', match: { arch: ['arm64'], boardIncludes: ['Raspberry Pi 5 Model B Rev 1.0'], isaAll: ['dotprod'] },
    notes: 'lab bench Pi', defaults: { threads: 3 }, space: { quant: ['fp32'], threads: [3] }, priors: {}, sources: ['our lab'],
  };
  const dir = t.testdir({ 'my-pi5.json': JSON.stringify(mine) });
  const r = await runProfile({ root: join(fixtures, 'raspberry-pi-5'), targetsDir: dir });
  t.equal(r.match?.target.name, 'my-pi5', 'board + ISA beats board alone');
});

t.test('`edgetune profile --json --root` prints a parseable report on stdout', async (t) => {
  const tsx = join(packageRoot(), 'node_modules/.bin/tsx');
  const main = join(packageRoot(), 'src/cli/main.ts');
  const { stdout } = await promisify(execFile)(tsx, [main, 'profile', '--json', '--root', join(fixtures, 'jetson-orin-nano')], { timeout: 60_000 });
  const r = JSON.parse(stdout);
  t.equal(r.profile.board, 'NVIDIA Jetson Orin Nano Developer Kit');
  t.same(r.profile.cpu.isa, ['neon', 'dotprod', 'fp16']);
  t.equal(r.match.target.name, 'jetson-orin-nano');
  t.equal(r.match.fallback, false);
  t.equal(r.verdicts, undefined);
});

t.test('the Jetson Nano recording: power mode, L4T, TensorRT and the power-mode note in the summary', async (t) => {
  const text = formatProfile(await runProfile({ root: join(fixtures, 'jetson-nano') }));
  t.match(text, /^board\s+NVIDIA Jetson Nano Developer Kit \(SoC Tegra210\), Jetson Linux 32\.7\.6$/m);
  t.match(text, /^thermal\s+40\.5 °C, throttling unknown, power mode 5W \(id 1\)$/m);
  t.match(text, /^accelerators\s+nvidia-jetson-gpu, tensorrt 8\.2\.1 \(not used: CPU build\)$/m);
  t.match(text, /^ {2}try\s+quant fp32, dynamic, fp16, weight-only-4; threads 2, 3, 4 \(default 4\)$/m);
});

t.test('an unknown arm64 board on the generic target says so, with a warning, even without --explain', async (t) => {
  const root = t.testdir({ proc: { cpuinfo: 'processor\t: 0\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\nCPU part\t: 0xd03\n', 'device-tree': { model: 'Pine64 RockPro64 v2.1\0' } } });
  const r = await runProfile({ root });
  t.equal(r.match?.target.name, 'generic-arm64');
  t.equal(r.match?.fallback, false, 'its conditions held');
  const text = formatProfile(r);
  t.match(text, /why:\n  warning: this device is not a known board \("Pine64 RockPro64 v2\.1"\)/);
});
