// Teacher and student in one ONNX model: the student's graph is copied beside the teacher's with every name
// prefixed, both reading the same graph inputs. One ONNX Runtime session then gives a batch's teacher and student
// activations in one call, and reconstruction needs one child process per stage instead of two.
import { clone } from '@bufbuild/protobuf';
import { NodeProtoSchema, TensorProtoSchema, ValueInfoProtoSchema } from 'onnx-buf';
import { valueInfo } from '../../onnx/builder.js';
import { DT } from '../../onnx/dtype.js';
import { cloneModel, type OnnxModel } from '../../onnx/model.js';
import { subgraphsOf } from '../../onnx/walk.js';

export interface Paired {
  model: OnnxModel;
  /** the name a student value has in the paired model */
  student(name: string): string;
}

/**
 * Undefined when the student cannot be copied by renaming alone (a node with a subgraph could read outer values
 * by names the renaming would miss); callers then run the two models apart.
 */
export function pairModels(teacher: OnnxModel, student: OnnxModel, teacherOutputs: string[], studentOutputs: string[]): Paired | undefined {
  const sg = student.proto.graph!;
  if (sg.node.some((n) => subgraphsOf(n).length > 0)) return undefined;
  const m = cloneModel(teacher);
  const g = m.proto.graph!;
  const taken = new Set<string>();
  for (const n of g.node) for (const x of [...n.input, ...n.output, n.name]) taken.add(x);
  let prefix = 'student/';
  while ([...taken].some((x) => x.startsWith(prefix))) prefix = `_${prefix}`;
  const inits = new Set(sg.initializer.map((t) => t.name));
  const shared = new Set(sg.input.filter((i) => !inits.has(i.name)).map((i) => i.name));
  const rn = (x: string) => (x === '' || shared.has(x) ? x : prefix + x);
  for (const n of sg.node) {
    const c = clone(NodeProtoSchema, n);
    c.name = c.name ? prefix + c.name : '';
    c.input = c.input.map(rn);
    c.output = c.output.map(rn);
    g.node.push(c);
  }
  for (const t of sg.initializer) {
    const c = clone(TensorProtoSchema, t);
    c.name = rn(t.name);
    g.initializer.push(c);
    // IR < 4 lists initializers among the inputs; keep that true for the copies.
    if (sg.input.some((i) => i.name === t.name)) g.input.push(valueInfo(c.name, t.dataType));
  }
  const have = new Set(g.output.map((o) => o.name));
  for (const o of sg.output) {
    const c = clone(ValueInfoProtoSchema, o);
    c.name = rn(o.name);
    if (!have.has(c.name)) { g.output.push(c); have.add(c.name); }
  }
  for (const name of [...teacherOutputs, ...studentOutputs.map(rn)]) {
    if (!have.has(name)) { g.output.push(valueInfo(name, DT.FLOAT)); have.add(name); }
  }
  return { model: m, student: rn };
}
