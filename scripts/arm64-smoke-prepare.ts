// Host side of the arm64 cross-check (scripts/arm64-crosscheck.sh): writes a tiny real ONNX model
// (MatMul + Add + Relu) for the emulated Node to run. Usage: tsx scripts/arm64-smoke-prepare.ts <out.onnx>
import { buildModel, GraphBuilder } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { saveModel } from '../src/onnx/model.js';

const out = process.argv[2];
if (!out) throw new Error('usage: arm64-smoke-prepare.ts <out.onnx>');
const g = new GraphBuilder('arm64_smoke');
const x = g.input('x', DT.FLOAT, [1, 4]);
// Weights 1..8 and bias 0.5: y = relu(x @ W + b), checked by the smoke entry against its own arithmetic.
const w = g.initializer('W', DT.FLOAT, [4, 2], Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
const b = g.initializer('b', DT.FLOAT, [2], Float32Array.from([0.5, -100]));
g.node('Relu', [g.op('Add', [g.op('MatMul', [x, w]), b])], { outputs: ['y'] });
g.output('y', DT.FLOAT, [1, 2]);
await saveModel(buildModel(g.graph), out);
console.log(`wrote ${out}`);
