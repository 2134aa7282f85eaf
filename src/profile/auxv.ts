import { normaliseIsa } from './isa.js';
import type { IsaFeature } from '../types.js';

// The arm64 hardware capabilities the kernel hands every process in its auxiliary vector (AT_HWCAP = 16,
// AT_HWCAP2 = 26). /proc/self/auxv holds them even where /proc/cpuinfo is masked or foreign (containers,
// qemu-user emulation, which passes the host's cpuinfo through), so it is the ARM probe of last resort.
// Bit numbers from the Linux UAPI header arch/arm64/include/uapi/asm/hwcap.h.

const HWCAP: Record<number, string> = { 0: 'fp', 1: 'asimd', 9: 'fphp', 10: 'asimdhp', 20: 'asimddp', 22: 'sve' };
const HWCAP2: Record<number, string> = { 1: 'sve2', 13: 'i8mm', 14: 'bf16' };

/** Raw auxv bytes (pairs of little-endian 64-bit words) → HWCAP and HWCAP2, when present. */
export function parseAuxv(buf: Uint8Array): { hwcap?: bigint; hwcap2?: bigint } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: { hwcap?: bigint; hwcap2?: bigint } = {};
  for (let off = 0; off + 16 <= buf.byteLength; off += 16) {
    const type = view.getBigUint64(off, true);
    const value = view.getBigUint64(off + 8, true);
    if (type === 0n) break;
    if (type === 16n) out.hwcap = value;
    if (type === 26n) out.hwcap2 = value;
  }
  return out;
}

/** arm64 HWCAP words → kernel feature names → normalised ISA features. */
export function isaFromHwcaps(hwcap: bigint, hwcap2 = 0n): { words: string[]; isa: IsaFeature[] } {
  const words: string[] = [];
  for (const [bit, name] of Object.entries(HWCAP)) if ((hwcap >> BigInt(bit)) & 1n) words.push(name);
  for (const [bit, name] of Object.entries(HWCAP2)) if ((hwcap2 >> BigInt(bit)) & 1n) words.push(name);
  return { words, isa: normaliseIsa('arm', words) };
}
