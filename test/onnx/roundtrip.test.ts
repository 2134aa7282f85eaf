// Lossless load → save on every real model we have: identical bytes, identical tensors, identical ORT outputs.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel, sha256 } from '../../src/onnx/model.js';
import { allGraphs, allTensors } from '../../src/onnx/walk.js';
import { readTensor } from '../../src/onnx/tensor.js';
import { GraphIndex, insertNodes, pruneUnused, removeNodes, renameValue, setInitializer } from '../../src/onnx/graph.js';
import { clone, create } from '@bufbuild/protobuf';
import { NodeProtoSchema, TensorProtoSchema, type TensorProto } from 'onnx-buf';
import {
  CORPUS_DIR, PADDLE_CLS, PADDLE_DIR, SILERO, SILERO_DIR, SILERO_HALF, WAKEWORD_DIR,
  allFinite, diffRuns, f32, onnxFiles, runOrt, sameBytes, type Feeds,
} from './helpers.js';

const packaged = [...onnxFiles(PADDLE_DIR), ...onnxFiles(SILERO_DIR), ...onnxFiles(WAKEWORD_DIR)];
const corpus = onnxFiles(CORPUS_DIR);

/** First tensor whose dtype, shape or values differ, or undefined. */
function tensorMismatch(a: TensorProto[], aDir: string | undefined, b: TensorProto[], bDir: string | undefined): string | undefined {
  if (a.length !== b.length) return `${a.length} tensors before, ${b.length} after`;
  for (let i = 0; i < a.length; i++) {
    if (a[i].name !== b[i].name) return `tensor #${i} is "${a[i].name}" before and "${b[i].name}" after`;
    const x = readTensor(a[i], aDir);
    const y = readTensor(b[i], bDir);
    if (x.dtype !== y.dtype || x.dims.join() !== y.dims.join() || !sameBytes(x.data, y.data)) return `tensor "${a[i].name}" differs`;
  }
  return undefined;
}

async function checkRoundTrip(t: Test, file: string): Promise<void> {
  const dir = t.testdir();
  const m = await loadModel(file);
  const out = join(dir, basename(file));
  const saved = await saveModel(m, out);
  const original = readFileSync(file);
  const written = readFileSync(out);
  t.ok(written.equals(original), 'saved bytes are identical to the file');
  t.equal(saved.sha256, sha256(original), 'reported sha256 is the original file\'s');
  t.equal(saved.bytes, original.length);
  const again = await loadModel(out);
  const before = allTensors(m.proto);
  t.ok(before.length > 0, 'the model holds tensors');
  t.equal(tensorMismatch(before, m.dir, allTensors(again.proto), again.dir), undefined, `all ${before.length} tensors read back identical`);
  t.equal(allGraphs(again.proto).length, allGraphs(m.proto).length, 'same number of (sub)graphs');
}

t.test('every packaged real model round-trips losslessly', async (t) => {
  t.ok(packaged.length >= 15, `found ${packaged.length} packaged models`);
  for (const file of packaged) await t.test(basename(file), (t) => checkRoundTrip(t, file));
});

const noCorpus = corpus.length === 0 ? `${CORPUS_DIR} is absent: skipping the shared corpus models` : false;

t.test('corpus models round-trip losslessly', { skip: noCorpus }, async (t) => {
  for (const file of corpus) await t.test(basename(file), (t) => checkRoundTrip(t, file));
});

// Inputs for a handful of models, chosen to exercise each family: Constant-node weights (PaddleOCR), If subgraphs
// with state inputs (Silero), a tf2onnx conv net, an STFT front-end, Gemm classifiers.
const sr16k = () => new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
const runCases: Array<{ file: string; feeds: () => Feeds }> = [
  { file: PADDLE_CLS, feeds: () => ({ x: f32([1, 3, 48, 192], 1) }) },
  { file: SILERO, feeds: () => ({ input: f32([1, 512], 2, 0.3), state: f32([2, 1, 128], 3, 0.1), sr: sr16k() }) },
  { file: SILERO_HALF, feeds: () => ({ input: f32([1, 512], 4, 0.3), state: f32([2, 1, 128], 5, 0.1) }) },
  { file: join(WAKEWORD_DIR, 'melspectrogram.onnx'), feeds: () => ({ input: f32([1, 1760], 6, 0.5) }) },
  { file: join(WAKEWORD_DIR, 'embedding_model.onnx'), feeds: () => ({ input_1: f32([1, 76, 32, 1], 7) }) },
  { file: join(WAKEWORD_DIR, 'hey_jarvis_v0.1.onnx'), feeds: () => ({ 'x.1': f32([1, 16, 96], 8) }) },
];
if (corpus.some((f) => basename(f) === 'mnist-12.onnx')) {
  runCases.push({ file: join(CORPUS_DIR, 'mnist-12.onnx'), feeds: () => ({ Input3: f32([1, 1, 28, 28], 9, 255) }) });
}

t.test('ONNX Runtime gives identical outputs before and after a round-trip', async (t) => {
  for (const c of runCases) {
    await t.test(basename(c.file), async (t) => {
      const out = join(t.testdir(), basename(c.file));
      await saveModel(await loadModel(c.file), out);
      const before = await runOrt(c.file, c.feeds());
      const after = await runOrt(out, c.feeds());
      t.ok(allFinite(before), 'outputs are finite numbers');
      t.equal(diffRuns(before, after), undefined, 'outputs are bit-identical');
    });
  }
});

t.test('an edited PaddleOCR model (Constant nodes → initializers, renamed input, extra node) still loads and runs the same', async (t) => {
  const m = await loadModel(PADDLE_CLS);
  const g = m.proto.graph!;
  const idx = new GraphIndex(g);
  const constants = g.node.filter((n) => n.opType === 'Constant');
  t.ok(constants.length > 100, `${constants.length} Constant nodes hold the weights`);
  for (const n of constants) {
    const c = idx.constantTensor(n.output[0]);
    if (!c) continue;
    setInitializer(g, { ...clone(TensorProtoSchema, c.tensor), name: n.output[0] });
  }
  removeNodes(g, constants.filter((n) => g.initializer.some((i) => i.name === n.output[0])));
  renameValue(g, 'x', 'image');
  const outName = g.output[0].name;
  renameValue(g, outName, `${outName}_pre`);
  g.output[0].name = outName;
  insertNodes(g, [create(NodeProtoSchema, { opType: 'Identity', name: 'edgetune_identity', input: [`${outName}_pre`], output: [outName] })]);
  t.equal(pruneUnused(g), 0, 'nothing became unused');

  const out = join(t.testdir(), 'edited.onnx');
  await saveModel(m, out);
  const again = await loadModel(out);
  const g2 = again.proto.graph!;
  t.equal(g2.node.filter((n) => n.opType === 'Constant').length, constants.length - g2.initializer.length, 'moved Constant nodes are gone');
  t.ok(g2.initializer.length > 100, 'weights are initializers now');
  const w = g2.initializer[0].name;
  t.equal(new GraphIndex(g2).constantTensor(w)?.source, 'initializer');
  t.same(g2.input.map((i) => i.name), ['image']);

  const x = f32([1, 3, 48, 192], 11);
  const before = await runOrt(PADDLE_CLS, { x });
  const after = await runOrt(out, { image: x });
  t.equal(diffRuns(before, after), undefined, 'edited model computes the same outputs');
});

t.test('renaming a weight that If branches read from the outer scope keeps Silero runnable', async (t) => {
  const m = await loadModel(SILERO_HALF);
  const g = m.proto.graph!;
  const name = 'decoder.rnn.weight_ih';
  t.ok(g.initializer.some((i) => i.name === name), `${name} is a main-graph initializer`);
  t.notOk(g.node.some((n) => n.input.includes(name)), 'no main-graph node reads it: only If bodies do');
  renameValue(g, name, 'renamed_weight_ih');
  const out = join(t.testdir(), 'renamed.onnx');
  await saveModel(m, out);
  await loadModel(out);
  const feeds = () => ({ input: f32([1, 512], 4, 0.3), state: f32([2, 1, 128], 5, 0.1) });
  t.equal(diffRuns(await runOrt(SILERO_HALF, feeds()), await runOrt(out, feeds())), undefined, 'same outputs after the rename');
});
