import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { fromBinary, toBinary, clone } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { ModelError, isENOENT } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { externalEntry, isExternal, tensorRawBytes } from './tensor.js';
import { allTensors } from './walk.js';
import { validateModel } from './validate.js';

/** A model and where it came from (external data paths are relative to `dir`). */
export interface OnnxModel {
  proto: ModelProto;
  path?: string;
  dir?: string;
}

const MAX_PROTO_BYTES = 2 ** 31 - 1;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Decodes a model from bytes; `name` is used in error messages. Never throws anything but ModelError. */
export function parseModel(bytes: Uint8Array, name = '<buffer>', dir?: string): OnnxModel {
  if (bytes.length === 0) throw new ModelError('MODEL_CORRUPT', `${name}: the file is empty; re-export or re-download the model`);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true });
  } catch (e) {
    throw new ModelError('MODEL_CORRUPT', `${name}: not a readable ONNX model (${(e as Error).message}); the file is truncated or is not ONNX. Re-export or re-download it.`, { cause: e });
  }
  const model: OnnxModel = { proto, path: name, dir };
  const problems = validateModel(model);
  if (problems.length) {
    throw new ModelError('MODEL_INVALID', `${name}: not a valid ONNX model: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}. The file may be truncated.`);
  }
  return model;
}

export async function loadModel(path: string): Promise<OnnxModel> {
  const abs = resolve(path);
  return parseModel(await readModelFile(path), abs, dirname(abs));
}

/** A model file's bytes; a missing path, a folder or an unreadable file is a MODEL_NOT_FOUND error naming the path. */
export async function readModelFile(path: string): Promise<Buffer> {
  const abs = resolve(path);
  try {
    const st = await stat(abs);
    if (!st.isFile()) throw new ModelError('MODEL_NOT_FOUND', `${path}: not a file${st.isDirectory() ? ' but a folder: give the .onnx file in it' : ''}`);
    return await readFile(abs);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    if (isENOENT(e)) throw new ModelError('MODEL_NOT_FOUND', `${path}: no such file`);
    throw new ModelError('MODEL_NOT_FOUND', `${path}: cannot read the file (${(e as Error).message})`, { cause: e });
  }
}

export function modelBytes(model: OnnxModel): Uint8Array {
  return toBinary(ModelProtoSchema, model.proto, { writeUnknownFields: true });
}

export function cloneModel(model: OnnxModel): OnnxModel {
  return { proto: clone(ModelProtoSchema, model.proto), path: model.path, dir: model.dir };
}

/**
 * Saves atomically. Tensors stored externally are rewritten into one `<name>.data` file beside the output, so the
 * saved model never points at data in another folder.
 */
export async function saveModel(model: OnnxModel, path: string): Promise<{ bytes: number; sha256: string }> {
  const abs = resolve(path);
  const external = allTensors(model.proto).filter(isExternal);
  let proto = model.proto;
  if (external.length > 0) {
    proto = clone(ModelProtoSchema, model.proto);
    const dataName = `${basename(abs)}.data`;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of allTensors(proto).filter(isExternal)) {
      const raw = tensorRawBytes(t, model.dir)!;
      relocate(t, dataName, offset, raw.length);
      chunks.push(raw);
      offset += raw.length;
    }
    await writeFileAtomic(resolve(dirname(abs), dataName), Buffer.concat(chunks));
  }
  const bytes = toBinary(ModelProtoSchema, proto, { writeUnknownFields: true });
  if (bytes.length > MAX_PROTO_BYTES) {
    throw new ModelError('MODEL_UNSUPPORTED', `${path}: the model is ${bytes.length} bytes, over protobuf's 2 GB limit; store its weights as external data`);
  }
  await writeFileAtomic(abs, bytes);
  return { bytes: bytes.length, sha256: sha256(bytes) };
}

function relocate(t: TensorProto, location: string, offset: number, length: number): void {
  t.dataLocation = TensorProto_DataLocation.EXTERNAL;
  t.externalData = [
    externalEntry('location', location),
    externalEntry('offset', String(offset)),
    externalEntry('length', String(length)),
  ];
}
