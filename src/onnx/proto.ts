// The ONNX protobuf schema (ONNX 1.20 definitions via onnx-buf, compiled for @bufbuild/protobuf).
// Unlike protobufjs with an old schema, @bufbuild/protobuf keeps unknown fields, so a load/save round-trip
// never silently drops data from a newer IR.
export {
  ModelProtoSchema, GraphProtoSchema, NodeProtoSchema, TensorProtoSchema, AttributeProtoSchema,
  ValueInfoProtoSchema, OperatorSetIdProtoSchema, StringStringEntryProtoSchema, TypeProtoSchema,
  TypeProto_TensorSchema, TensorShapeProtoSchema, TensorShapeProto_DimensionSchema,
  AttributeProto_AttributeType, TensorProto_DataType, TensorProto_DataLocation,
} from 'onnx-buf';
export type {
  ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto, ValueInfoProto, OperatorSetIdProto,
  TypeProto, TensorShapeProto,
} from 'onnx-buf';
export { create, fromBinary, toBinary, clone } from '@bufbuild/protobuf';
