// inspectModel on a built model whose every number is known, on PaddleOCR (weights in Constant nodes) and on
// Silero (weights inside If branches), checked against independent sources; and the `inspect` command.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { create } from '@bufbuild/protobuf';
import {
  StringStringEntryProtoSchema, TensorProto_DataLocation, TensorShapeProto_DimensionSchema, TypeProtoSchema,
  TypeProto_SequenceSchema, ValueInfoProtoSchema,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, buildModel, valueInfo } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { inspectModel, type Dim, type ModelSummary } from '../../src/onnx/inspect.js';
import { loadModel, parseModel, modelBytes, sha256 } from '../../src/onnx/model.js';
import { externalEntry, makeTensor, readTensor } from '../../src/onnx/tensor.js';
import { allGraphs, allTensors } from '../../src/onnx/walk.js';
import { formatInspect, runInspect } from '../../src/cli/commands/inspect.js';
import { PADDLE_CLS, SILERO } from './helpers.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

function built() {
  const g = new GraphBuilder('known');
  g.input('x', DT.FLOAT, ['N', 3]);
  g.input('W', DT.FLOAT, [2, 3]); // also an initializer below: a default, not a real input
  g.input('cond', DT.BOOL, []);
  g.graph.input.push(valueInfo('noshape', DT.INT64));
  const odd = valueInfo('odd', DT.FLOAT, [4]);
  if (odd.type?.value.case === 'tensorType') odd.type.value.value.shape!.dim.push(create(TensorShapeProto_DimensionSchema, {}));
  g.graph.input.push(odd);
  g.graph.input.push(create(ValueInfoProtoSchema, {
    name: 'seq',
    type: create(TypeProtoSchema, { value: { case: 'sequenceType', value: create(TypeProto_SequenceSchema, { elemType: valueInfo('_', DT.FLOAT).type }) } }),
  }));
  g.initializer('W', DT.FLOAT, [2, 3], new Float32Array(6)); // 6 params, 24 B
  g.initializer('Q', DT.INT4, [5], new Int8Array(5)); // 5 params, 3 B
  g.initializer('E', DT.FLOAT, [4], new Float32Array(4)); // 4 params, 16 B, made external below
  g.constant('C', DT.FLOAT16, [3], new Uint16Array(3)); // 3 params, 6 B
  g.node('Constant', [], { outputs: ['ints'], attrs: { value_ints: [1, 2, 3] } }); // 3 params, 24 B
  g.node('ConstantOfShape', ['ints'], { outputs: ['filled'], attrs: { value: makeTensor('v', DT.INT64, [1], new BigInt64Array(1)) } }); // 1 param, 8 B
  g.node('FusedMatMul', ['x', 'W'], { outputs: ['mm'], domain: 'com.microsoft' });
  const then = new GraphBuilder('then');
  then.initializer('Ti', DT.FLOAT, [1], new Float32Array(1)); // 1 param, 4 B
  then.constant('Tc', DT.FLOAT, [2], new Float32Array(2)); // 2 params, 8 B
  then.node('Add', ['mm', 'Tc'], { outputs: ['t_out'] });
  then.output('t_out', DT.FLOAT);
  const inner = new GraphBuilder('inner');
  inner.node('Identity', ['mm'], { outputs: ['i_out'] });
  inner.output('i_out', DT.FLOAT);
  const els = new GraphBuilder('else');
  els.node('If', ['cond'], { outputs: ['e_out'], attrs: { then_branch: inner.graph, else_branch: inner.graph } });
  els.output('e_out', DT.FLOAT);
  g.node('If', ['cond'], { outputs: ['y'], attrs: { then_branch: then.graph, else_branch: els.graph } });
  g.output('y', DT.FLOAT, ['N', 3]);
  const m = buildModel(g.graph, { '': 17, 'com.microsoft': 1 });
  const E = m.proto.graph!.initializer[2];
  E.rawData = new Uint8Array(0);
  E.dataLocation = TensorProto_DataLocation.EXTERNAL;
  E.externalData = [externalEntry('location', 'weights.bin'), externalEntry('length', '16')];
  m.proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'author', value: 'edgetune' }));
  return m;
}

t.test('a built model: every number is known by construction', async (t) => {
  const s = inspectModel(built());
  t.equal(s.irVersion, 8);
  t.same(s.producer, { name: 'edgetune-builder', version: '1' });
  t.same(s.opsets, [{ domain: 'ai.onnx', version: 17 }, { domain: 'com.microsoft', version: 1 }]);
  t.same(s.inputs, [
    { name: 'x', type: 'float32', shape: ['N', 3] },
    { name: 'cond', type: 'bool', shape: [] },
    { name: 'noshape', type: 'int64', shape: undefined },
    { name: 'odd', type: 'float32', shape: [4, '?'] },
    { name: 'seq', type: 'seq(float32)', shape: undefined },
  ], 'inputs: dim params as strings, unknown dims as ?, W left out');
  t.match(s.notes.join('\n'), /1 graph inputs also have initializers/);
  t.same(s.outputs, [{ name: 'y', type: 'float32', shape: ['N', 3] }]);
  t.same(s.weights.initializers, { tensors: 3, params: 15, bytes: 24 + 3 + 16 });
  t.same(s.weights.constantNodes, { tensors: 2, params: 6, bytes: 6 + 24 }, 'a tensor Constant and a value_ints Constant');
  t.same(s.weights.attributes, { tensors: 1, params: 1, bytes: 8 }, 'ConstantOfShape value');
  t.same(s.weights.subgraphs, { tensors: 2, params: 3, bytes: 12 });
  t.same(s.weights.external, { tensors: 1, params: 4, bytes: 16, files: ['weights.bin'] });
  t.same(s.params, {
    count: 25, bytes: 24 + 3 + 16 + 30 + 8 + 12,
    byDtype: [
      { dtype: 'float32', tensors: 4, count: 13, bytes: 52 },
      { dtype: 'int64', tensors: 2, count: 4, bytes: 32 },
      { dtype: 'float16', tensors: 1, count: 3, bytes: 6 },
      { dtype: 'int4', tensors: 1, count: 5, bytes: 3 },
    ],
  });
  t.same(s.controlFlow, { if: 2, loop: 0, scan: 0, subgraphs: 4, maxDepth: 2 });
  t.same(s.nodes, { total: 10, main: 5, inSubgraphs: 5 }, 'the inner branch graph is counted once per use');
  t.same(s.ops.slice(0, 2), [{ domain: 'ai.onnx', op: 'Constant', count: 3 }, { domain: 'ai.onnx', op: 'Identity', count: 2 }]);
  t.same(s.ops.find((o) => o.op === 'FusedMatMul'), { domain: 'com.microsoft', op: 'FusedMatMul', count: 1 });
  t.same(s.metadata, { author: 'edgetune' });
  t.doesNotThrow(() => JSON.stringify(s), 'plain JSON (no bigints)');
});

/** ORT's view of the inputs, in our notation ('' for an unnamed dim becomes '?'). */
async function ortInputs(file: string): Promise<Array<{ name: string; type: string; shape: Dim[] }>> {
  const session = await ort.InferenceSession.create(file);
  try {
    return session.inputMetadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape.map((d) => (d === '' ? '?' : d)) } : { name: m.name, type: '?', shape: [] }));
  } finally {
    await session.release();
  }
}

function commonChecks(t: Test, s: ModelSummary, m: Awaited<ReturnType<typeof loadModel>>) {
  const all = allGraphs(m.proto);
  t.equal(s.nodes.total, all.reduce((a, g) => a + g.graph.node.length, 0), 'node count over all graphs');
  t.equal(s.ops.reduce((a, o) => a + o.count, 0), s.nodes.total, 'histogram sums to the node count');
  const elements = allTensors(m.proto).reduce((a, x) => a + readTensor(x, m.dir).data.length, 0);
  const w = s.weights;
  t.equal(w.initializers.params + w.constantNodes.params + w.attributes.params + w.subgraphs.params + w.sparse.params, s.params.count, 'the places add up to the total');
  return elements;
}

t.test('PaddleOCR classifier: every weight is in a Constant node', async (t) => {
  const m = await loadModel(PADDLE_CLS);
  const s = inspectModel(m);
  const constants = m.proto.graph!.node.filter((n) => n.opType === 'Constant').length;
  t.equal(s.weights.initializers.tensors, 0, 'no initializers');
  t.equal(s.weights.constantNodes.tensors, constants, `${constants} Constant nodes`);
  const elements = commonChecks(t, s, m);
  t.equal(s.params.count, elements, 'params equal the elements readTensor returns');
  const f32 = s.params.byDtype.find((d) => d.dtype === 'float32')!;
  t.equal(f32.bytes, 4 * f32.count);
  t.equal(s.ops.find((o) => o.op === 'Conv')?.count, m.proto.graph!.node.filter((n) => n.opType === 'Conv').length);
  t.same(s.controlFlow, { if: 0, loop: 0, scan: 0, subgraphs: 0, maxDepth: 0 });
  t.same(s.inputs, await ortInputs(PADDLE_CLS), 'inputs agree with ONNX Runtime');
  t.same(s.opsets, [{ domain: 'ai.onnx', version: 9 }]);
});

t.test('Silero VAD: weights inside If branches', async (t) => {
  const m = await loadModel(SILERO);
  const s = inspectModel(m);
  const ifs = allGraphs(m.proto).flatMap((g) => g.graph.node).filter((n) => n.opType === 'If').length;
  t.ok(ifs > 0);
  t.equal(s.controlFlow.if, ifs);
  t.equal(s.controlFlow.subgraphs, 2 * ifs, 'two branches per If');
  t.ok(s.controlFlow.maxDepth >= 1);
  t.equal(s.weights.initializers.tensors, 0);
  t.ok(s.weights.subgraphs.params > 100_000, `${s.weights.subgraphs.params} params live inside the branches`);
  t.ok(s.weights.subgraphs.params > 0.9 * s.params.count, 'nearly all of them');
  const elements = commonChecks(t, s, m);
  t.equal(s.params.count, elements);
  t.same(s.inputs, await ortInputs(SILERO), 'inputs agree with ONNX Runtime (unnamed dims as ?)');
  t.ok(s.nodes.inSubgraphs > s.nodes.main);
});

t.test('edgetune inspect: JSON and text', async (t) => {
  const report = await runInspect(PADDLE_CLS);
  t.equal(report.file.sha256, sha256(readFileSync(PADDLE_CLS)));
  t.equal(report.file.bytes, readFileSync(PADDLE_CLS).length);
  const text = formatInspect(report);
  t.match(text, /Constant nodes {2}250 tensors, 133,665 params/);
  t.match(text, /x {2}float32 {2}\[p2o\.DynamicDimension\.0, 3, p2o\.DynamicDimension\.1, p2o\.DynamicDimension\.2\]/);
  t.match(text, /control {4}none/);
  t.match(formatInspect({ ...report, ...inspectModel(parseModel(modelBytes(built()), 'built')) }), /control {4}If ×2; 4 subgraphs, nested 2 deep/);

  const cli = ['--import', 'tsx', 'src/cli/main.ts', 'inspect'];
  const json = await run(process.execPath, [...cli, PADDLE_CLS, '--json'], { cwd: ROOT, maxBuffer: 8 << 20 });
  t.same(JSON.parse(json.stdout), report, '--json prints what runInspect returns');
  const plain = await run(process.execPath, [...cli, SILERO], { cwd: ROOT });
  t.match(plain.stdout, /control {4}If ×\d+; \d+ subgraphs/);
  const missing = await run(process.execPath, [...cli, 'nope/missing.onnx'], { cwd: ROOT }).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.equal(missing?.code, 1, 'exit code 1');
  t.match(missing?.stderr, /nope\/missing\.onnx: no such file/);
});
