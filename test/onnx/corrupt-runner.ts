// Child process for corrupt.test.ts: loads each file named on the command line, reads every tensor, and prints
// one JSON line per file saying what happened. Run in a child so that a hang can be detected and killed.
import { loadModel } from '../../src/onnx/model.js';
import { readTensor } from '../../src/onnx/tensor.js';
import { allTensors } from '../../src/onnx/walk.js';
import { ModelError } from '../../src/errors.js';

for (const file of process.argv.slice(2)) {
  let result: Record<string, unknown>;
  try {
    const m = await loadModel(file);
    // A file that parses must still never crash the tensor readers.
    let tensorErrors = 0;
    for (const t of allTensors(m.proto)) {
      try {
        readTensor(t, m.dir);
      } catch (e) {
        if (!(e instanceof ModelError)) throw e;
        tensorErrors++;
      }
    }
    result = { file, loaded: true, tensorErrors };
  } catch (e) {
    const err = e as Error & { code?: string };
    result = { file, loaded: false, name: err?.name, code: err?.code, modelError: e instanceof ModelError, message: String(err?.message ?? e) };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
