// Whether this CPU has fast kernels for the int8 work a recipe asks for. edgetune compresses on the device that will
// run the model, so the host's /proc/cpuinfo is the target's. Advice only: nothing here changes the graph.
import { readFileSync } from 'node:fs';
import { parseCpuinfo } from '../../profile/cpuinfo.js';
import type { IsaFeature } from '../../types.js';

export interface HostCpu {
  family?: 'x86' | 'arm';
  /** undefined when /proc/cpuinfo could not be read (not Linux) */
  isa?: IsaFeature[];
}

export function hostCpu(): HostCpu {
  try {
    const ci = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
    return { family: ci.family, isa: ci.family ? ci.isa : undefined };
  } catch {
    return {};
  }
}

export type Int8Work = 'static' | 'dynamic' | 'conv-integer';

/** Warnings for `work` on `cpu` (empty when the CPU is known to handle it well). */
export function int8KernelWarnings(work: Int8Work, cpu: HostCpu, q: { activationType?: 'int8' | 'uint8'; reduceRange?: boolean } = {}): string[] {
  const out: string[] = [];
  if (work === 'conv-integer') {
    out.push('ConvInteger has no fast kernel in ONNX Runtime\'s CPU provider: measured on x86, int8-weight ConvInteger runs ~6x slower than fp32 and uint8-weight ConvInteger about as fast as fp32. Static (QDQ) quantization is the way to speed convolutions up.');
  }
  if (!cpu.isa) {
    out.push('CPU features unknown (no /proc/cpuinfo): cannot tell whether this CPU has fast int8 kernels; measure before deploying');
    return out;
  }
  const has = (f: IsaFeature) => cpu.isa!.includes(f);
  if (cpu.family === 'arm' && !has('dotprod') && !has('i8mm')) {
    out.push('this ARM CPU has no int8 dot-product instructions (dotprod/i8mm, e.g. Cortex-A53/A72): ONNX Runtime\'s int8 kernels widen to 16 bits and gain little over fp32 here; the 4x smaller weights still help memory-bound models');
  }
  if (cpu.family === 'x86') {
    if (!has('avx2')) out.push('this x86 CPU has no AVX2: ONNX Runtime\'s int8 kernels are not faster than fp32 on it');
    else if (!has('vnni') && !has('amx') && work === 'static' && !(q.activationType === 'uint8' && q.reduceRange)) {
      out.push('this x86 CPU has no VNNI: ONNX Runtime runs int8 as u8×s8 with vpmaddubsw, whose 16-bit sums can saturate; set quantize.activationType "uint8" and reduceRange true for such targets');
    }
  }
  return out;
}
