// ARM "CPU implementer" / "CPU part" codes (the MIDR_EL1 fields /proc/cpuinfo prints) → names.
// Values as in the Linux kernel's arch/arm64/include/asm/cputype.h; only cores seen on edge boards and
// common arm64 hosts are listed, anything else is reported by its codes rather than guessed.

const IMPLEMENTERS: Record<number, string> = {
  0x41: 'ARM',
  0x42: 'Broadcom',
  0x43: 'Cavium',
  0x46: 'Fujitsu',
  0x48: 'HiSilicon',
  0x4e: 'NVIDIA',
  0x51: 'Qualcomm',
  0x53: 'Samsung',
  0x61: 'Apple',
  0x6d: 'Microsoft',
  0xc0: 'Ampere',
};

const ARM_PARTS: Record<number, string> = {
  0xc07: 'Cortex-A7',
  0xc09: 'Cortex-A9',
  0xc0f: 'Cortex-A15',
  0xd03: 'Cortex-A53',
  0xd04: 'Cortex-A35',
  0xd05: 'Cortex-A55',
  0xd07: 'Cortex-A57',
  0xd08: 'Cortex-A72',
  0xd09: 'Cortex-A73',
  0xd0a: 'Cortex-A75',
  0xd0b: 'Cortex-A76',
  0xd0c: 'Neoverse-N1',
  0xd0d: 'Cortex-A77',
  0xd0e: 'Cortex-A76AE',
  0xd40: 'Neoverse-V1',
  0xd41: 'Cortex-A78',
  0xd42: 'Cortex-A78AE',
  0xd44: 'Cortex-X1',
  0xd46: 'Cortex-A510',
  0xd47: 'Cortex-A710',
  0xd48: 'Cortex-X2',
  0xd49: 'Neoverse-N2',
  0xd4b: 'Cortex-A78C',
  0xd4c: 'Cortex-X1C',
  0xd4d: 'Cortex-A715',
  0xd4e: 'Cortex-X3',
  0xd4f: 'Neoverse-V2',
  0xd80: 'Cortex-A520',
  0xd81: 'Cortex-A720',
  0xd82: 'Cortex-X4',
  0xd84: 'Neoverse-V3',
  0xd85: 'Cortex-X925',
  0xd87: 'Cortex-A725',
};

const NVIDIA_PARTS: Record<number, string> = { 0x003: 'Denver', 0x004: 'Carmel' };

/** "0x41" or "65" → 65; undefined when the text is not a number. */
function code(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function armImplementerName(implementer: string | undefined): string | undefined {
  const n = code(implementer);
  return n === undefined ? undefined : IMPLEMENTERS[n] ?? `implementer ${implementer!.trim()}`;
}

/** 'Cortex-A72' for (0x41, 0xd08); unknown pairs come back as their codes so nothing is invented. */
export function armCoreName(implementer: string | undefined, part: string | undefined): string | undefined {
  const i = code(implementer);
  const p = code(part);
  if (p === undefined) return undefined;
  const known = i === 0x41 ? ARM_PARTS[p] : i === 0x4e ? NVIDIA_PARTS[p] : undefined;
  return known ?? `${armImplementerName(implementer) ?? 'unknown implementer'} part ${part!.trim()}`;
}
