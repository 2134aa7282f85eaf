import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCpuinfo } from '../../src/profile/cpuinfo.js';
import { armCoreName, armImplementerName } from '../../src/profile/arm-cores.js';
import { normaliseIsa } from '../../src/profile/isa.js';

const fixture = (device: string) => readFileSync(join(import.meta.dirname, '../fixtures/profile', device, 'proc/cpuinfo'), 'utf8');

t.test('Raspberry Pi 4 (64-bit kernel, space-padded): Cortex-A72, neon only', async (t) => {
  const c = parseCpuinfo(fixture('raspberry-pi-4'));
  t.equal(c.family, 'arm');
  t.equal(c.arch, 'arm64');
  t.equal(c.processors, 4);
  t.same(c.coreTypes, ['Cortex-A72']);
  t.equal(c.model, 'Cortex-A72');
  t.equal(c.vendor, 'ARM');
  t.same(c.isa, ['neon']);
  t.equal(c.board, 'Raspberry Pi 4 Model B Rev 1.5');
  t.equal(c.serial, '100000000fe69593');
  t.same(c.notes, []);
});

t.test('Raspberry Pi 5: Cortex-A76 with dotprod and fp16, no i8mm', async (t) => {
  const c = parseCpuinfo(fixture('raspberry-pi-5'));
  t.same(c.coreTypes, ['Cortex-A76']);
  t.same(c.isa, ['neon', 'dotprod', 'fp16']);
  t.notOk(c.isa.includes('i8mm'));
  t.equal(c.board, 'Raspberry Pi 5 Model B Rev 1.0');
});

t.test('Jetson Orin Nano: 6x Cortex-A78AE with dotprod; Jetson Nano: Cortex-A57 without', async (t) => {
  const orin = parseCpuinfo(fixture('jetson-orin-nano'));
  t.equal(orin.processors, 6);
  t.same(orin.coreTypes, ['Cortex-A78AE']);
  t.same(orin.isa, ['neon', 'dotprod', 'fp16']);
  t.equal(orin.board, undefined, 'Tegra kernels print no Model line');
  const nano = parseCpuinfo(fixture('jetson-nano'));
  t.same(nano.coreTypes, ['Cortex-A57']);
  t.same(nano.isa, ['neon']);
});

t.test('x86: this machine (VNNI) and a Skylake-X (AVX-512 without VNNI)', async (t) => {
  const vm = parseCpuinfo(fixture('x86-vnni'));
  t.equal(vm.family, 'x86');
  t.equal(vm.arch, 'x64');
  t.equal(vm.vendor, 'Intel');
  t.equal(vm.model, 'Intel(R) Xeon(R) Processor');
  t.equal(vm.processors, 2);
  t.equal(vm.physicalCores, 2);
  for (const f of ['sse4_2', 'avx', 'avx2', 'fma', 'avx512', 'vnni'] as const) t.ok(vm.isa.includes(f), `has ${f}`);
  t.notOk(vm.isa.includes('amx'), 'no amx_tile flag on this CPU');
  t.notOk(vm.isa.includes('neon'));
  const sk = parseCpuinfo(fixture('x86-skylake-x'));
  t.equal(sk.model, 'Intel(R) Core(TM) i7-7820X CPU @ 3.60GHz');
  t.same(sk.isa, ['sse4_2', 'avx', 'avx2', 'fma', 'avx512']);
});

t.test('x86 flag normalisation: both VNNI spellings, AMX, and f16c is not fp16', async (t) => {
  t.same(normaliseIsa('x86', ['avx_vnni']), ['vnni']);
  t.same(normaliseIsa('x86', ['avx512_vnni', 'avx512f']), ['avx512', 'vnni']);
  t.same(normaliseIsa('x86', ['amx_tile', 'amx_int8', 'amx_bf16']), ['amx']);
  t.same(normaliseIsa('x86', ['f16c', 'avx512_fp16']), ['fp16']);
  t.same(normaliseIsa('x86', ['f16c']), []);
  t.same(normaliseIsa('x86', ['asimd']), [], 'ARM names mean nothing on x86');
});

t.test('ARM feature normalisation: i8mm, bf16, sve, and fphp alone gives fp16', async (t) => {
  t.same(normaliseIsa('arm', 'fp asimd asimddp i8mm bf16 sve sve2'.split(' ')), ['neon', 'dotprod', 'i8mm', 'bf16', 'sve']);
  t.same(normaliseIsa('arm', ['fphp']), ['fp16']);
  t.same(normaliseIsa('arm', ['avx2']), []);
});

t.test('ISA is what every CPU has; the model names a big.LITTLE mix', async (t) => {
  const block = (n: number, part: string, features: string) =>
    `processor\t: ${n}\nFeatures\t: ${features}\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: ${part}\n\n`;
  const c = parseCpuinfo(
    block(0, '0xd05', 'fp asimd asimddp i8mm') + block(1, '0xd05', 'fp asimd asimddp i8mm') + block(2, '0xd0b', 'fp asimd asimddp'),
  );
  t.same(c.coreTypes, ['Cortex-A55', 'Cortex-A76']);
  t.equal(c.model, '2x Cortex-A55 + 1x Cortex-A76');
  t.same(c.isa, ['neon', 'dotprod'], 'i8mm dropped: not every core has it');
});

t.test('32-bit ARM kernel: neon from the armv7 name, arch arm, old global Processor line is not a CPU', async (t) => {
  const c = parseCpuinfo(
    'Processor\t: ARMv7 Processor rev 3 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU part\t: 0xd08\n\nHardware\t: BCM2711\n',
  );
  t.equal(c.processors, 1);
  t.equal(c.arch, 'arm');
  t.same(c.isa, ['neon']);
  t.same(c.coreTypes, ['Cortex-A72']);
});

t.test('CRLF line endings parse like LF', async (t) => {
  const c = parseCpuinfo(fixture('raspberry-pi-5').replace(/\n/g, '\r\n'));
  t.equal(c.processors, 4);
  t.same(c.isa, ['neon', 'dotprod', 'fp16']);
  t.equal(c.board, 'Raspberry Pi 5 Model B Rev 1.0');
});

t.test('empty, garbage and truncated input give fewer fields and a note, never a throw', async (t) => {
  const empty = parseCpuinfo('');
  t.equal(empty.processors, 0);
  t.same(empty.isa, []);
  t.match(empty.notes.join(), /empty/);
  const junk = parseCpuinfo('\0\0\u00ff binary junk without colons\n');
  t.equal(junk.processors, 0);
  t.equal(junk.family, undefined);
  t.match(junk.notes.join(), /no 'processor : N' entries/);
  const noFlags = parseCpuinfo('processor : 0\nfoo : bar\n');
  t.equal(noFlags.processors, 1);
  t.equal(noFlags.family, undefined);
  t.match(noFlags.notes.join(), /neither x86 flags nor ARM Features/);
  // A dump cut off inside the second CPU, before its Features line.
  const cut = parseCpuinfo(fixture('raspberry-pi-4').split('\n').slice(0, 11).join('\n'));
  t.equal(cut.processors, 2);
  t.same(cut.isa, ['neon']);
  t.match(cut.notes.join(), /1 of 2 CPUs list no Features/);
});

t.test('ARM part names: known parts by name, unknown ones by their codes', async (t) => {
  t.equal(armCoreName('0x41', '0xd08'), 'Cortex-A72');
  t.equal(armCoreName('0x41', '0xd42'), 'Cortex-A78AE');
  t.equal(armCoreName('0x4e', '0x004'), 'Carmel');
  t.equal(armCoreName('0x41', '0xfff'), 'ARM part 0xfff');
  t.equal(armCoreName('0x99', '0x001'), 'implementer 0x99 part 0x001');
  t.equal(armCoreName('0x41', undefined), undefined);
  t.equal(armImplementerName('0x51'), 'Qualcomm');
  t.equal(armImplementerName('nonsense'), undefined);
});
