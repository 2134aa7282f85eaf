import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { CommandModule } from 'yargs';
import { loadModel } from '../../onnx/model.js';
import { inspectModel, type Dim, type ModelSummary, type ValueSummary, type WeightBucket } from '../../onnx/inspect.js';
import { fmtBytes, formatTable, printJson } from '../output.js';

export interface InspectReport extends ModelSummary {
  file: { path: string; bytes: number; sha256: string };
}

async function fileSha256(path: string): Promise<string> {
  // Streamed: a model can be large, and loadModel already holds one copy in memory.
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Loads and summarises a model; returns data, prints nothing. */
export async function runInspect(path: string): Promise<InspectReport> {
  const model = await loadModel(path);
  const abs = model.path ?? path;
  const [st, sha256] = await Promise.all([stat(abs), fileSha256(abs)]);
  return { ...inspectModel(model), file: { path: abs, bytes: st.size, sha256 } };
}

const int = (n: number) => n.toLocaleString('en-US');
const shape = (s?: Dim[]) => (s ? `[${s.join(', ')}]` : 'rank unknown');
const tensors = (n: number) => `${int(n)} tensor${n === 1 ? '' : 's'}`;
const where = (b: WeightBucket) => (b.tensors ? `${tensors(b.tensors)}, ${int(b.params)} params, ${fmtBytes(b.bytes)}` : 'none');

/** The human summary: facts first, then the op histogram. */
export function formatInspect(r: InspectReport): string {
  const io = (vs: ValueSummary[]) => (vs.length ? vs.map((v) => `  ${v.name}  ${v.type ?? 'type unknown'}  ${shape(v.shape)}`) : ['  none']);
  const cf = r.controlFlow;
  const control = cf.subgraphs === 0 ? 'none'
    : `${[['If', cf.if], ['Loop', cf.loop], ['Scan', cf.scan]].filter(([, n]) => n).map(([k, n]) => `${k} ×${n}`).join(', ') || 'other subgraph ops'}; ${cf.subgraphs} subgraphs, nested ${cf.maxDepth} deep`;
  const w = r.weights;
  const lines = [
    `model      ${r.file.path}`,
    `size       ${fmtBytes(r.file.bytes)}${w.external.tensors ? ` + ${fmtBytes(w.external.bytes)} external` : ''}, sha256 ${r.file.sha256.slice(0, 16)}…`,
    `producer   ${r.producer.name || 'unknown'}${r.producer.version ? ` ${r.producer.version}` : ''}`,
    `ir         ${r.irVersion}; opsets ${r.opsets.map((o) => `${o.domain} ${o.version}`).join(', ') || 'none'}`,
    `graph      "${r.graphName}": ${int(r.nodes.total)} nodes${r.nodes.inSubgraphs ? ` (${int(r.nodes.inSubgraphs)} in subgraphs)` : ''}`,
    'inputs', ...io(r.inputs),
    'outputs', ...io(r.outputs),
    `params     ${int(r.params.count)} (${fmtBytes(r.params.bytes)})`,
    ...r.params.byDtype.map((d) => `  ${d.dtype.padEnd(9)} ${int(d.count).padStart(13)}  ${fmtBytes(d.bytes).padStart(10)}  in ${tensors(d.tensors)}`),
    'weights',
    `  initializers    ${where(w.initializers)}`,
    `  Constant nodes  ${where(w.constantNodes)}`,
    `  other attrs     ${where(w.attributes)}`,
    `  in subgraphs    ${where(w.subgraphs)}`,
    ...(w.sparse.tensors ? [`  sparse          ${where(w.sparse)}`] : []),
    `  external        ${w.external.tensors ? `${where(w.external)} in ${w.external.files.join(', ')}` : 'none'}`,
    `control    ${control}`,
  ];
  const meta = Object.entries(r.metadata);
  if (meta.length) lines.push('metadata', ...meta.map(([k, v]) => `  ${k} = ${v.length > 120 ? `${v.slice(0, 117)}…` : v}`));
  lines.push('', formatTable(['op', 'domain', 'count'], r.ops.map((o) => [o.op, o.domain, o.count])));
  if (r.notes.length) lines.push('', 'notes:', ...r.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}

interface Args { model: string; json?: boolean }

export const inspectCommand: CommandModule<object, Args> = {
  command: 'inspect <model>',
  describe: 'Summarise an ONNX model: opsets, inputs/outputs, op histogram, parameters, where weights live, control flow',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'the .onnx file' })
      .option('json', { type: 'boolean', describe: 'print the summary as JSON' }) as never,
  handler: async (argv) => {
    const report = await runInspect(argv.model);
    if (argv.json) printJson(report);
    else process.stdout.write(formatInspect(report) + '\n');
  },
};
