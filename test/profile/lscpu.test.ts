import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCacheSize, parseLscpu } from '../../src/profile/lscpu.js';

const fixture = (device: string) => readFileSync(join(import.meta.dirname, '../fixtures/profile', device, 'cmd/lscpu.txt'), 'utf8');

t.test('Raspberry Pi 4, 64-bit, old flat lscpu (raspberrypi/linux#3991): A72, neon only, 1500 MHz', async (t) => {
  const l = parseLscpu(fixture('raspberry-pi-4'));
  t.equal(l.architecture, 'aarch64');
  t.equal(l.cpus, 4);
  t.same(l.sections, [{ modelName: 'Cortex-A72', maxMHz: 1500, minMHz: 600, cores: 4, isa: ['neon'] }]);
  t.same(l.caches, []);
  t.same(l.notes, []);
});

t.test('Jetson Orin Nano (gprMax PR #510): wrapped flags keep dotprod, clusters multiply, caches per instance', async (t) => {
  const l = parseLscpu(fixture('jetson-orin-nano'));
  t.equal(l.sections.length, 1);
  t.equal(l.sections[0].modelName, 'Cortex-A78AE');
  t.equal(l.sections[0].cores, 6, '3 cores per cluster x 2 clusters; "Socket(s): -" ignored');
  t.equal(l.sections[0].maxMHz, 1728);
  t.same(l.sections[0].isa, ['neon', 'dotprod', 'fp16']);
  t.same(l.caches, [
    { level: 1, type: 'data', sizeKB: 64, instances: 6 },
    { level: 1, type: 'instruction', sizeKB: 64, instances: 6 },
    { level: 2, type: 'unified', sizeKB: 256, instances: 6 },
    { level: 3, type: 'unified', sizeKB: 2048, instances: 2 },
  ]);
});

t.test('a flag split mid-word by the wrap is healed only when the halves make a known flag', async (t) => {
  const text = 'Architecture: aarch64\nModel name: X\n    Flags:  fp asimd evtstrm asimd\n            dp i8mm\n';
  t.same(parseLscpu(text).sections[0].isa, ['neon', 'dotprod', 'i8mm']);
  const twoFlags = 'Architecture: aarch64\nModel name: X\n    Flags:  fp asimd fphp\n            asimdhp\n';
  t.same(parseLscpu(twoFlags).sections[0].isa, ['neon', 'fp16'], 'fphp + asimdhp stay two flags');
});

t.test('big.LITTLE (RK3588, whisper.cpp#7): one section per core type', async (t) => {
  // Recorded by StuartIanNaylor in ggml-org/whisper.cpp#7 (2023-02-17); the paste ends inside the A76 Flags line.
  const text = `Architecture:           aarch64
  CPU op-mode(s):       32-bit, 64-bit
  Byte Order:           Little Endian
CPU(s):                 8
  On-line CPU(s) list:  0-7
Vendor ID:              ARM
  Model name:           Cortex-A55
    Model:              0
    Thread(s) per core: 1
    Core(s) per socket: 4
    Socket(s):          1
    Stepping:           r2p0
    CPU max MHz:        1800.0000
    CPU min MHz:        408.0000
    BogoMIPS:           48.00
    Flags:              fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp
                        asimdhp cpuid asimdrdm lrcpc dcpop asimddp
  Model name:           Cortex-A76
    Model:              0
    Thread(s) per core: 1
    Core(s) per socket: 2
    Socket(s):          2
    Stepping:           r4p0
    CPU max MHz:        2400.0000
    CPU min MHz:        408.0000
    BogoMIPS:           48.00
`;
  const l = parseLscpu(text);
  t.equal(l.cpus, 8);
  t.same(l.sections.map((s) => [s.modelName, s.cores, s.maxMHz]), [['Cortex-A55', 4, 1800], ['Cortex-A76', 4, 2400]]);
  t.same(l.sections[0].isa, ['neon', 'dotprod', 'fp16']);
  t.same(l.sections[1].isa, [], 'the paste was cut before the A76 flags: unknown, not borrowed');
});

t.test('i8mm and bf16 (util-linux#3062, an A510/A710 dump)', async (t) => {
  const text = `Architecture:           x86_64
Vendor ID:              ARM
  Model name:           Cortex-A510
    Core(s) per socket: 3
    CPU max MHz:        2016.0000
    Flags:              fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid as
                        imdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit u
                        scat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bf16 bti
`;
  // lscpu --sysroot on an x86 host printed the host's Architecture; the flags decide the family.
  t.same(parseLscpu(text).sections[0].isa, ['neon', 'dotprod', 'i8mm', 'fp16', 'bf16']);
});

t.test('this x86 VM (recorded): flags, caches with instance counts', async (t) => {
  const l = parseLscpu(fixture('x86-vnni'));
  t.equal(l.architecture, 'x86_64');
  t.same(l.sections[0].isa, ['fp16', 'bf16', 'sse4_2', 'avx', 'avx2', 'fma', 'avx512', 'vnni']);
  t.equal(l.sections[0].maxMHz, undefined, 'a VM prints no CPU max MHz: unknown, not 0');
  t.same(l.caches.find((c) => c.level === 3), { level: 3, type: 'unified', sizeKB: 266240, instances: 1 });
});

t.test('old lscpu cache lines (raspberrypi/linux#4751, BCM2711 on buster) carry no instance count', async (t) => {
  const l = parseLscpu('Architecture:        aarch64\nL1d cache:           32K\nL1i cache:           48K\nL2 cache:            1024K\n');
  t.same(l.caches, [
    { level: 1, type: 'data', sizeKB: 32 },
    { level: 1, type: 'instruction', sizeKB: 48 },
    { level: 2, type: 'unified', sizeKB: 1024 },
  ]);
  t.equal(l.notes.length, 3);
});

t.test('cache sizes, empty and malformed input', async (t) => {
  t.same(parseCacheSize('1.5 MiB (6 instances)'), { totalKB: 1536, instances: 6 });
  t.same(parseCacheSize('2 MiB (1 instance)'), { totalKB: 2048, instances: 1 });
  t.equal(parseCacheSize('lots'), undefined);
  t.same(parseLscpu('').notes, ['lscpu output is empty']);
  const junk = parseLscpu('hello world\nno colons here\n');
  t.same(junk.sections, []);
  t.match(junk.notes.join(), /not lscpu output/);
  t.match(parseLscpu('Architecture: aarch64\nL2 cache: big\n').notes.join(), /cannot read cache size "big"/);
});
