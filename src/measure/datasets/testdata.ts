// ONNX's test-data layout (the model zoo and onnx/backend/test use it): a folder per run,
//   test_data_set_0/input_0.pb, input_1.pb, …, output_0.pb
// each file one serialized TensorProto. A folder that holds input_*.pb itself counts as one set.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { DatasetError, isENOENT } from '../../errors.js';
import { dtypeName } from '../../onnx/dtype.js';
import { readTensor } from '../../onnx/tensor.js';
import { plainDtypeOf, type PlainTensor } from '../plain-tensor.js';

export interface TestDataSet {
  dir: string;
  /** input_<i>.pb files, ordered by i */
  inputs: string[];
}

const INPUT_FILE = /^input_(\d+)\.pb$/;

async function inputFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names
    .map((n) => ({ n, m: INPUT_FILE.exec(n) }))
    .filter((x) => x.m)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
    .map((x) => join(dir, x.n));
}

/** The sets under `dir` in natural order (test_data_set_2 before test_data_set_10), or `dir` itself as one set. */
export async function listTestDataSets(dir: string): Promise<TestDataSet[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${dir}: no such folder`);
    throw new DatasetError('DATASET_NOT_FOUND', `${dir}: cannot list the folder (${(e as Error).message})`, { cause: e });
  }
  const own = await inputFiles(dir);
  if (own.length > 0) return [{ dir, inputs: own }];
  const setDirs = names.filter((n) => /^test_data_set_\d+$/.test(n)).sort((a, b) => Number(a.split('_').pop()) - Number(b.split('_').pop()));
  const sets: TestDataSet[] = [];
  for (const n of setDirs) {
    const d = join(dir, n);
    if (!(await stat(d)).isDirectory()) continue;
    const inputs = await inputFiles(d);
    if (inputs.length === 0) throw new DatasetError('DATASET_CORRUPT', `${d}: a test-data set with no input_0.pb`);
    sets.push({ dir: d, inputs });
  }
  return sets;
}

/** True when `dir` looks like ONNX test data (input_0.pb inside, or test_data_set_* folders). */
export async function isTestDataDir(dir: string): Promise<boolean> {
  try {
    const names = await readdir(dir);
    return names.some((n) => INPUT_FILE.test(n) || /^test_data_set_\d+$/.test(n));
  } catch {
    return false;
  }
}

/** One serialized TensorProto file as a named plain tensor (name may be empty: then inputs match by position). */
export function parseTensorFile(bytes: Uint8Array, path: string): { name: string; tensor: PlainTensor } {
  let proto;
  try {
    proto = fromBinary(TensorProtoSchema, bytes, { readUnknownFields: true });
  } catch (e) {
    throw new DatasetError('DATASET_CORRUPT', `${path}: not a serialized ONNX TensorProto (${(e as Error).message})`, { cause: e });
  }
  const dtype = plainDtypeOf(proto.dataType);
  if (!dtype) throw new DatasetError('DATASET_CORRUPT', `${path}: tensor type ${dtypeName(proto.dataType)} cannot be fed to onnxruntime-node`);
  let t;
  try {
    t = readTensor(proto);
  } catch (e) {
    throw new DatasetError('DATASET_CORRUPT', `${path}: ${(e as Error).message}`, { cause: e });
  }
  return { name: proto.name, tensor: { dtype, dims: t.dims, data: t.data as PlainTensor['data'] } };
}

export async function readTensorFile(path: string, signal?: AbortSignal): Promise<{ name: string; tensor: PlainTensor }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path, { signal });
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file`);
    throw e;
  }
  return parseTensorFile(bytes, path);
}
