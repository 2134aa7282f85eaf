import type { OnnxModel } from '../onnx/model.js';

export interface PassOptions {
  excludeOps?: string[];
  excludeNodes?: string[];
}

export function opsetVersion(model: OnnxModel, domain: string): number {
  const o = model.proto.opsetImport.find((x) => x.domain === domain || (domain === '' && x.domain === 'ai.onnx'));
  return o ? Number(o.version) : 0;
}
