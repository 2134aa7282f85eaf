// Runs under an arm64 Node (Debian's Node 18, emulated by qemu-user) in scripts/arm64-crosscheck.sh: loads
// onnxruntime-node's arm64 binary, runs the tiny model, runs the profile (bundled for Node 18) and prints one
// JSON line. Plain ESM JavaScript on purpose: Node 18 under emulation runs no TypeScript. No timings.
import { createRequire } from 'node:module';

// Usage: node arm64-smoke.mjs <model.onnx|-> <profile.mjs|->; '-' skips that half (the shell script runs
// each half in its own process, so a crash in the native library cannot hide the other result).
const [modelPath, profileBundle] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const report = { arch: process.arch, node: process.versions.node, checks: {} };
const fail = (what, e) => {
  report.checks[what] = `FAILED: ${e?.message ?? e}`;
  report.ok = false;
};
report.ok = true;
if (modelPath !== '-') try {
  const ort = require('onnxruntime-node');
  report.checks.providers = ort.listSupportedBackends().map((p) => `${p.name}${p.bundled ? '' : ' (not bundled)'}`).join(', ');
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const x = new ort.Tensor('float32', Float32Array.from([1, 0, -1, 2]), [1, 4]);
  const y = (await session.run({ x })).y.data;
  // x @ W = [1*1 + 0*3 - 1*5 + 2*7, 1*2 + 0*4 - 1*6 + 2*8] = [10, 12]; + b = [10.5, -88]; relu = [10.5, 0].
  const want = [10.5, 0];
  if (y.length !== 2 || y.some((v, i) => Math.abs(v - want[i]) > 1e-5)) throw new Error(`got [${[...y]}], want [${want}]`);
  report.checks.inference = `ok: y = [${[...y]}]`;
  await session.release();
} catch (e) {
  fail('inference', e);
}
if (profileBundle !== '-') try {
  const { profileDevice } = await import(profileBundle);
  const p = await profileDevice({ skipSystemInformation: true });
  report.profile = { arch: p.arch, isa: p.cpu.isa, cores: p.cpu.cores, runtime: p.runtime, notes: p.notes };
  if (p.arch !== 'arm64') throw new Error(`profile arch ${p.arch}, want arm64`);
  if (!p.cpu.isa.includes('neon')) throw new Error(`profile ISA [${p.cpu.isa}] lacks neon`);
  report.checks.profile = `ok: arch ${p.arch}, isa ${p.cpu.isa.join(' ')}`;
} catch (e) {
  fail('profile', e);
}
console.log(JSON.stringify(report));
process.exitCode = report.ok ? 0 : 1;
