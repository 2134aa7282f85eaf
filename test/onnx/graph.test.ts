// Graph queries (producer, consumers, topological order, constants) and edits, on small built graphs.
import t, { type Test } from 'tap';
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, attr, buildModel, valueInfo } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import {
  GraphIndex, dropValueInfo, insertNodes, outerReads, pruneUnused, removeInitializer, removeNodes, renameValue,
  setInitializer, uniqueName,
} from '../../src/onnx/graph.js';
import { makeTensor, readTensor } from '../../src/onnx/tensor.js';
import { modelBytes } from '../../src/onnx/model.js';
import { validateModel } from '../../src/onnx/validate.js';
import { runOrt } from './helpers.js';

/** x → Relu → a; Add(a, W) → b; Split(b) → s0, s1; Mul(s0, s1) → y. */
function chain() {
  const g = new GraphBuilder('chain');
  g.input('x', DT.FLOAT, [1, 4]);
  g.initializer('W', DT.FLOAT, [1, 4], Float32Array.from([1, 2, 3, 4]));
  g.node('Relu', ['x'], { outputs: ['a'], name: 'relu' });
  g.node('Add', ['a', 'W'], { outputs: ['b'], name: 'add' });
  g.node('Split', ['b'], { outputs: ['s0', 's1'], name: 'split', attrs: { axis: 1, num_outputs: 2 } });
  g.node('Mul', ['s0', 's1'], { outputs: ['y'], name: 'mul' });
  g.output('y', DT.FLOAT, [1, 2]);
  return g.graph;
}

/** v = Relu(x); If(cond) then Identity(v) else Neg(v), with a nested If in the else branch reading x. */
function withIf() {
  const g = new GraphBuilder('withif');
  g.input('x', DT.FLOAT, [3]);
  g.input('cond', DT.BOOL, []);
  g.node('Relu', ['x'], { outputs: ['v'], name: 'relu' });
  const then = new GraphBuilder('then');
  then.node('Identity', ['v'], { outputs: ['t_out'], name: 'then_id' });
  then.output('t_out', DT.FLOAT, [3]);
  const inner = new GraphBuilder('inner');
  inner.node('Neg', ['x'], { outputs: ['i_out'], name: 'inner_neg' });
  inner.output('i_out', DT.FLOAT, [3]);
  const innerElse = new GraphBuilder('inner_else');
  innerElse.node('Neg', ['v'], { outputs: ['ie_out'], name: 'inner_else_neg' });
  innerElse.output('ie_out', DT.FLOAT, [3]);
  const els = new GraphBuilder('else');
  els.node('If', ['cond'], { outputs: ['e_out'], name: 'nested_if', attrs: { then_branch: inner.graph, else_branch: innerElse.graph } });
  els.output('e_out', DT.FLOAT, [3]);
  g.node('If', ['cond'], { outputs: ['r'], name: 'if', attrs: { then_branch: then.graph, else_branch: els.graph } });
  g.node('Abs', ['r'], { outputs: ['y'], name: 'abs' });
  g.output('y', DT.FLOAT, [3]);
  return g.graph;
}

const names = (ns: NodeProto[]) => ns.map((n) => n.name);

/** A fixed shuffle (seeded), so a failure reproduces. */
function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function assertTopo(t: Test, g: GraphProto, order: NodeProto[], what: string) {
  const pos = new Map(order.map((n, i) => [n, i]));
  const idx = new GraphIndex(g);
  const bad = order.filter((n) => [...n.input, ...outerReads(n)].some((i) => idx.producer.has(i) && pos.get(idx.producer.get(i)!)! > pos.get(n)!));
  t.equal(order.length, g.node.length, `${what}: every node once`);
  t.equal(new Set(order).size, order.length, `${what}: no duplicates`);
  t.same(names(bad), [], `${what}: producers before consumers`);
}

t.test('producer and consumers', async (t) => {
  const g = chain();
  g.node.push(create(NodeProtoSchema, { opType: 'Mul', name: 'square', input: ['a', 'a'], output: ['a2'] }));
  const idx = new GraphIndex(g);
  t.equal(idx.producer.get('a')?.name, 'relu');
  t.equal(idx.producer.get('s1')?.name, 'split', 'second output of a multi-output node');
  t.equal(idx.producer.get('x'), undefined, 'graph inputs have no producer');
  t.equal(idx.producer.get('W'), undefined, 'initializers have no producer');
  t.same(names(idx.consumersOf('a')), ['add', 'square'], 'a node reading a value twice is listed once');
  t.same(names(idx.consumersOf('W')), ['add']);
  t.same(names(idx.consumersOf('s0')), ['mul']);
  t.same(names(idx.consumersOf('y')), [], 'a graph output nobody reads');
  t.same(names(idx.consumersOf('nope')), []);
  t.ok(idx.graphInputs.has('x') && idx.graphOutputs.has('y') && idx.initializers.has('W'));
});

t.test('an If node counts as a consumer of the outer values its branches read', async (t) => {
  const g = withIf();
  const idx = new GraphIndex(g);
  const ifNode = g.node.find((n) => n.name === 'if')!;
  t.same([...new Set(outerReads(ifNode))].sort(), ['cond', 'v', 'x'], 'reads through both branches and the nested If');
  t.same(names(idx.consumersOf('v')), ['if']);
  t.same(names(idx.consumersOf('x')), ['relu', 'if']);
  t.same(names(idx.consumersOf('t_out')), [], 'branch-local values are not visible outside');
});

t.test('topological order', async (t) => {
  const g = chain();
  t.same(names(new GraphIndex(g).topoOrder()), ['relu', 'add', 'split', 'mul'], 'a sorted list keeps its order');
  g.node.reverse();
  t.same(names(new GraphIndex(g).topoOrder()), ['relu', 'add', 'split', 'mul'], 'a reversed list is sorted (Mul reads two outputs of Split)');
  // a wider graph, shuffled many ways
  const b = new GraphBuilder('wide');
  b.input('x', DT.FLOAT, [2]);
  let prev = ['x'];
  for (let i = 0; i < 12; i++) {
    const outs = b.node(i % 3 === 0 ? 'Split' : 'Add', i % 3 === 0 ? [prev[0]] : [prev[0], prev[prev.length - 1]], { outputs: i % 3 === 0 ? 2 : 1, name: `n${i}` });
    prev = [...outs, ...prev].slice(0, 3);
  }
  const wide = b.graph;
  const original = [...wide.node];
  for (let seed = 1; seed <= 20; seed++) {
    wide.node = shuffled(original, seed);
    assertTopo(t, wide, new GraphIndex(wide).topoOrder(), `shuffle ${seed}`);
  }
  const f = withIf();
  f.node.reverse(); // Abs, If, Relu: the If reads v (made by Relu) only from inside its branches
  const order = new GraphIndex(f).topoOrder();
  t.same(names(order), ['relu', 'if', 'abs'], 'an If comes after the producer of a value its branch reads');
  f.node = order;
  const run = await runOrt(modelBytes(buildModel(f)), { x: new ort.Tensor('float32', Float32Array.from([-1, 2, -3]), [3]), cond: new ort.Tensor('bool', Uint8Array.from([0]), []) });
  t.same([...(run.y.data as Float32Array)], [0, 2, 0], 'ORT runs the sorted If graph (else → nested else → Neg(Relu x), then Abs)');
});

t.test('a branch that returns an outer value directly still makes its If a consumer of it', async (t) => {
  const g = new GraphBuilder('passthrough');
  g.input('x', DT.FLOAT, [2]);
  g.input('cond', DT.BOOL, []);
  const then = new GraphBuilder('then');
  then.output('v', DT.FLOAT, [2]); // no nodes: the branch output is the outer value itself
  const els = new GraphBuilder('else');
  els.node('Neg', ['v'], { outputs: ['n'] });
  els.output('n', DT.FLOAT, [2]);
  g.node('If', ['cond'], { outputs: ['y'], name: 'if', attrs: { then_branch: then.graph, else_branch: els.graph } });
  g.node('Relu', ['x'], { outputs: ['v'], name: 'relu' });
  g.output('y', DT.FLOAT, [2]);
  const idx = new GraphIndex(g.graph);
  t.same(names(idx.consumersOf('v')), ['if']);
  const order = idx.topoOrder();
  t.same(names(order), ['relu', 'if']);
  t.same(validateModel(buildModel(g.graph)), []);
  // (ONNX Runtime 1.30 refuses such a model and asks for an Identity; exporters insert one. The index still must
  // not lose the edge, or a pass could delete the value's producer.)
  renameValue(g.graph, 'v', 'relu_out');
  t.same(then.graph.output.map((o) => o.name), ['relu_out'], 'renameValue follows into the branch output');
});

t.test('a cycle is reported, not looped on', async (t) => {
  const g = new GraphBuilder('loopy');
  g.input('x', DT.FLOAT, [1]);
  g.node('Add', ['x', 'q'], { outputs: ['p'], name: 'p' });
  g.node('Relu', ['p'], { outputs: ['q'], name: 'q' });
  g.node('Neg', ['x'], { outputs: ['fine'], name: 'fine' });
  t.throws(() => new GraphIndex(g.graph).topoOrder(), /graph "loopy" has a cycle: 2 nodes/);
});

t.test('constantTensor: initializers, Constant nodes, and initializers that are also inputs', async (t) => {
  const b = new GraphBuilder('consts');
  b.input('x', DT.FLOAT, [2]);
  b.input('D', DT.FLOAT, [2]);
  b.initializer('W', DT.FLOAT, [2], Float32Array.from([1, 2]));
  b.initializer('D', DT.FLOAT, [2], Float32Array.from([5, 6]));
  b.constant('C', DT.FLOAT, [2], Float32Array.from([3, 4]));
  b.node('Constant', [], { outputs: ['F'], name: 'float_const', attrs: { value_float: { float: 1.5 } } });
  b.node('Constant', [], { outputs: ['Z'], name: 'other_domain', domain: 'com.example', attrs: { value: makeTensor('Z', DT.FLOAT, [1], Float32Array.from([9])) } });
  const idx = new GraphIndex(b.graph);
  const w = idx.constantTensor('W');
  t.equal(w?.source, 'initializer');
  t.same([...readTensor(w!.tensor).data], [1, 2]);
  const c = idx.constantTensor('C');
  t.equal(c?.source, 'constant-node');
  t.equal(c?.node?.name, 'C_const');
  t.same([...readTensor(c!.tensor).data], [3, 4]);
  t.equal(idx.constantTensor('D'), undefined, 'an initializer that is also a graph input can be overridden: not constant');
  t.equal(idx.constantTensor('x'), undefined, 'a graph input');
  t.equal(idx.constantTensor('F'), undefined, 'value_float Constants are not read as tensors');
  t.equal(idx.constantTensor('Z'), undefined, 'a Constant in another domain is not ONNX\'s Constant');
  t.equal(idx.constantTensor('nope'), undefined);
});

t.test('setInitializer, removeInitializer, insertNodes, removeNodes', async (t) => {
  const g = chain();
  setInitializer(g, makeTensor('W', DT.FLOAT, [1, 4], Float32Array.from([9, 9, 9, 9])));
  t.equal(g.initializer.length, 1, 'replacing keeps one W');
  t.same([...readTensor(g.initializer[0]).data], [9, 9, 9, 9]);
  setInitializer(g, makeTensor('V', DT.FLOAT, [1], Float32Array.from([0])));
  t.same(g.initializer.map((i) => i.name), ['W', 'V'], 'a new name is added');
  g.input.push(valueInfo('V', DT.FLOAT, [1]));
  removeInitializer(g, 'V');
  t.same(g.initializer.map((i) => i.name), ['W']);
  t.same(g.input.map((i) => i.name), ['x'], 'an IR<4 style input entry for it goes too');

  const add = g.node.find((n) => n.name === 'add')!;
  const id1 = create(NodeProtoSchema, { opType: 'Identity', name: 'id1', input: ['a'], output: ['a_id'] });
  const id2 = create(NodeProtoSchema, { opType: 'Identity', name: 'id2', input: ['a_id'], output: ['a_id2'] });
  insertNodes(g, [id1, id2], add);
  t.same(names(g.node), ['relu', 'id1', 'id2', 'add', 'split', 'mul'], 'inserted before Add, in order');
  const tail = create(NodeProtoSchema, { opType: 'Identity', name: 'tail', input: ['y'], output: ['y2'] });
  insertNodes(g, [tail]);
  t.equal(g.node.at(-1)?.name, 'tail', 'no anchor: appended');
  removeNodes(g, [id1, id2, tail]);
  t.same(names(g.node), ['relu', 'add', 'split', 'mul']);
});

t.test('renameValue renames everywhere in scope, including branch bodies that read the value', async (t) => {
  const g = withIf();
  g.valueInfo.push(valueInfo('v', DT.FLOAT, [3]));
  renameValue(g, 'v', 'relu_out');
  t.same(g.node[0].output, ['relu_out']);
  t.equal(g.valueInfo[0].name, 'relu_out', 'value_info follows');
  const ifNode = g.node.find((n) => n.name === 'if')!;
  t.same([...new Set(outerReads(ifNode))].sort(), ['cond', 'relu_out', 'x'], 'the branches read the new name');
  t.same(validateModel(buildModel(g)), [], 'the model is still valid');
  renameValue(g, 'x', 'input');
  renameValue(g, 'y', 'output');
  t.same(g.input.map((i) => i.name), ['input', 'cond']);
  t.same(g.output.map((i) => i.name), ['output']);
  const run = await runOrt(modelBytes(buildModel(g)), { input: new ort.Tensor('float32', Float32Array.from([-1, 2, -3]), [3]), cond: new ort.Tensor('bool', Uint8Array.from([1]), []) });
  t.same([...(run.output.data as Float32Array)], [0, 2, 0], 'ORT runs the renamed graph');

  // a body that defines the same name itself keeps its own value
  const b = new GraphBuilder('shadow');
  b.input('c', DT.BOOL, []);
  b.input('s', DT.FLOAT, [1]);
  const body = new GraphBuilder('body');
  body.node('Constant', [], { outputs: ['s'], attrs: { value: makeTensor('s', DT.FLOAT, [1], Float32Array.from([1])) } });
  body.node('Identity', ['s'], { outputs: ['o'] });
  body.output('o', DT.FLOAT, [1]);
  b.node('If', ['c'], { outputs: ['r'], attrs: { then_branch: body.graph, else_branch: body.graph } });
  renameValue(b.graph, 's', 's2');
  t.same(body.graph.node[1].input, ['s'], 'a shadowing body is left alone');
  t.same(b.graph.input.map((i) => i.name), ['c', 's2']);
});

t.test('pruneUnused drops dead initializers and Constant nodes, keeps what subgraphs and outputs use', async (t) => {
  const g = withIf();
  g.initializer.push(makeTensor('dead_init', DT.FLOAT, [1], Float32Array.from([0])));
  g.initializer.push(makeTensor('read_by_branch', DT.FLOAT, [1], Float32Array.from([0])));
  g.node.push(create(NodeProtoSchema, { opType: 'Constant', name: 'dead_const', output: ['dc'], attribute: [attr('value', makeTensor('dc', DT.FLOAT, [1], Float32Array.from([0])))] }));
  g.node.push(create(NodeProtoSchema, { opType: 'Constant', name: 'out_const', output: ['oc'], attribute: [attr('value', makeTensor('oc', DT.FLOAT, [1], Float32Array.from([0])))] }));
  g.output.push(valueInfo('oc', DT.FLOAT, [1]));
  const then = g.node.find((n) => n.name === 'if')!.attribute.find((a) => a.name === 'then_branch')!.g!;
  then.node.push(create(NodeProtoSchema, { opType: 'Identity', name: 'uses_init', input: ['read_by_branch'], output: ['rb'] }));
  const before = g.node.length;
  t.equal(pruneUnused(g), 2, 'one initializer and one Constant node removed');
  t.same(g.initializer.map((i) => i.name), ['read_by_branch']);
  t.equal(g.node.length, before - 1);
  t.ok(g.node.some((n) => n.name === 'out_const'), 'a Constant that is a graph output stays');
  t.equal(pruneUnused(g), 0, 'nothing more to do');
});

t.test('uniqueName avoids every name in the graph and its subgraphs', async (t) => {
  const g = withIf();
  t.equal(uniqueName(g, 'fresh'), 'fresh');
  t.equal(uniqueName(g, 'v'), 'v_1', 'a value name');
  t.equal(uniqueName(g, 'relu'), 'relu_1', 'a node name');
  t.equal(uniqueName(g, 'cond'), 'cond_1', 'an input name');
  t.equal(uniqueName(g, 'i_out'), 'i_out_1', 'a name used only in a nested branch');
  g.node.push(create(NodeProtoSchema, { opType: 'Identity', name: 'x', input: ['v'], output: ['v_1'] }));
  t.equal(uniqueName(g, 'v'), 'v_2', 'skips taken suffixes');
  dropValueInfo(g);
  t.equal(g.valueInfo.length, 0);
});
