// JSON lines: one example per line, an object keyed by input name holding nested arrays of numbers, plus an
// optional "label". E.g. {"input": [[[0.1, 0.2, …]]], "label": 3}. Read line by line, never all at once.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { DatasetError, isENOENT } from '../../errors.js';
import { allocPlain, type PlainDtype, type PlainTensor } from '../plain-tensor.js';

export interface JsonLine {
  /** 1-based, for messages */
  line: number;
  record: Record<string, unknown>;
}

/** Streams the non-empty lines of a .jsonl file as objects. */
export async function* readJsonLines(path: string, signal?: AbortSignal): AsyncGenerator<JsonLine> {
  const stream = createReadStream(path, { encoding: 'utf8', signal });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (e) => reject(isENOENT(e)
      ? new DatasetError('DATASET_NOT_FOUND', `${path}: no such file`)
      : new DatasetError('DATASET_NOT_FOUND', `${path}: cannot read the file (${e.message})`, { cause: e })));
  });
  await opened;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const text of lines) {
      n++;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new DatasetError('DATASET_CORRUPT', `${path}:${n}: not valid JSON (${(e as Error).message})`);
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new DatasetError('DATASET_CORRUPT', `${path}:${n}: each line must be an object keyed by input name, e.g. {"input": [[0.1, 0.2]], "label": 1}`);
      }
      yield { line: n, record: value as Record<string, unknown> };
    }
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** The shape of a nested array; throws when it is ragged or holds something other than numbers/booleans. */
export function nestedShape(value: unknown, where: string): number[] {
  const dims: number[] = [];
  let v = value;
  while (Array.isArray(v)) {
    dims.push(v.length);
    if (v.length === 0) break;
    v = v[0];
  }
  const check = (x: unknown, depth: number, path: string): void => {
    if (depth === dims.length) {
      if (typeof x !== 'number' && typeof x !== 'boolean') throw new DatasetError('DATASET_CORRUPT', `${where}${path}: ${JSON.stringify(x)} is not a number`);
      return;
    }
    if (!Array.isArray(x) || x.length !== dims[depth]) {
      throw new DatasetError('DATASET_CORRUPT', `${where}${path}: ragged array (expected ${dims[depth]} items at depth ${depth}, found ${Array.isArray(x) ? x.length : 'a scalar'})`);
    }
    x.forEach((y, i) => check(y, depth + 1, `${path}[${i}]`));
  };
  check(value, 0, '');
  return dims;
}

const INT_RANGE: Partial<Record<PlainDtype, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535], int32: [-(2 ** 31), 2 ** 31 - 1], uint32: [0, 2 ** 32 - 1], bool: [0, 1],
};

/** A nested array of numbers as a tensor of `dtype`; integers must be whole numbers in range. */
export function nestedToTensor(value: unknown, dtype: PlainDtype, where: string): PlainTensor {
  const dims = nestedShape(value, where);
  const flat = (Array.isArray(value) ? (value as unknown[]).flat(Infinity) : [value]) as Array<number | boolean>;
  const out = allocPlain(dtype, flat.length);
  const isInt = dtype !== 'float32' && dtype !== 'float64' && dtype !== 'float16';
  if (dtype === 'float16') throw new DatasetError('DATASET_CORRUPT', `${where}: float16 inputs cannot be given as JSON lines; use .npy or ONNX test data`);
  for (let i = 0; i < flat.length; i++) {
    const x = Number(flat[i]);
    if (isInt && !Number.isInteger(x)) throw new DatasetError('DATASET_CORRUPT', `${where}: element ${i} is ${flat[i]}, but the model input is ${dtype}`);
    const r = INT_RANGE[dtype];
    if (r && (x < r[0] || x > r[1])) throw new DatasetError('DATASET_CORRUPT', `${where}: element ${i} is ${x}, outside ${dtype}'s range [${r[0]}, ${r[1]}]`);
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) out[i] = BigInt(x);
    else (out as Float32Array)[i] = x;
  }
  return { dtype, dims, data: out };
}
