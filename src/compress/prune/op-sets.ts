// The op families the channel dependency analysis treats alike, by how a value's channels flow through them.
// Ops that act on each element alone: a value's channels pass through untouched.
export const UNARY = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign',
  'Exp', 'Log', 'Neg', 'Abs', 'Sqrt', 'Reciprocal', 'Erf', 'Gelu', 'Mish', 'Identity', 'Clip', 'Cast', 'Floor', 'Ceil',
  'Round', 'Sign', 'ThresholdedRelu', 'Shrink', 'Sin', 'Cos', 'Dropout',
]);
// Element-wise with numpy broadcasting: constants are sliced when they carry the channel axis, values are joined.
export const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu']);
// Pooling over the spatial dims of NCHW: channels pass through.
export const POOLS = new Set(['MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);
