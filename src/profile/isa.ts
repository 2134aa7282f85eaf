import { ISA_FEATURES } from '../targets/schema.js';
import type { IsaFeature } from '../types.js';

// Kernel flag names → the normalised names targets are written in. Only features that change which
// onnxruntime kernels run are kept: int8 dot products (dotprod, i8mm, vnni, amx), vector width
// (neon, avx2, avx512) and fp16/bf16 arithmetic (not mere conversion: x86 `f16c` is not `fp16`).

const X86: Record<string, IsaFeature> = {
  sse4_2: 'sse4_2',
  avx: 'avx',
  avx2: 'avx2',
  fma: 'fma',
  avx512f: 'avx512',
  avx512_vnni: 'vnni',
  avx_vnni: 'vnni',
  amx_tile: 'amx',
  avx512_bf16: 'bf16',
  avx512_fp16: 'fp16',
};

const ARM: Record<string, IsaFeature> = {
  asimd: 'neon', // arm64 name
  neon: 'neon', // 32-bit ARM name
  asimddp: 'dotprod',
  i8mm: 'i8mm',
  fphp: 'fp16',
  asimdhp: 'fp16',
  bf16: 'bf16',
  sve: 'sve',
};

/** Normalises `flags` (x86) or `Features` (ARM) words, in the canonical order of ISA_FEATURES. */
export function normaliseIsa(family: 'x86' | 'arm', words: Iterable<string>): IsaFeature[] {
  const table = family === 'x86' ? X86 : ARM;
  const found = new Set<IsaFeature>();
  for (const w of words) {
    const f = table[w.toLowerCase()];
    if (f) found.add(f);
  }
  return ISA_FEATURES.filter((f) => found.has(f));
}

/** True for a kernel flag name the tables above normalise (used to heal flags lscpu wrapped mid-word). */
export function isIsaWord(word: string): boolean {
  const w = word.toLowerCase();
  return w in X86 || w in ARM;
}
