#!/usr/bin/env python3
"""The reference side of `npm run bench:vs-ort`: quantizes a model with ONNX Runtime's own Python quantizer.

Developer-side only (never at run time, never in npm test): a device runs edgetune with Node.js alone.
Settings are the quantizer's documented ones, with per-channel weights turned on where edgetune uses them too
(--per-tensor turns them off: the bench retries that way when per-channel fails, as a user would):
  static   quant_pre_process (shape inference + optimization, as ORT's docs recommend; skipped with a note when it
           fails), then quantize_static: QDQ, int8 activations and weights (S8S8), per-channel, the given calibration
           method with its own defaults (percentile 99.999, entropy 128 bins)
  dynamic  quantize_dynamic: int8 weights, per-channel
  int4     MatMulNBitsQuantizer: block 32, symmetric, accuracy_level 4 (MatMul only: Gemm layers stay fp32)
Calibration examples come as one .npy per model input in --calib (examples along dim 0), fed one example at a time.
Prints one JSON line: {"seconds": wall time of the quantizer incl. calibration, "notes": [...]}.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static


class NpyReader(CalibrationDataReader):
    def __init__(self, folder: str, limit: int):
        self.arrays = {f[:-4]: np.load(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.endswith('.npy')}
        if not self.arrays:
            raise SystemExit(f'{folder}: no .npy files')
        self.n = min(limit, min(a.shape[0] for a in self.arrays.values()))
        self.i = 0

    def get_next(self):
        if self.i >= self.n:
            return None
        feed = {name: a[self.i:self.i + 1] for name, a in self.arrays.items()}
        self.i += 1
        return feed

    def rewind(self):
        self.i = 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['static', 'dynamic', 'int4'])
    p.add_argument('model')
    p.add_argument('out')
    p.add_argument('--calib')
    p.add_argument('--method', choices=['minmax', 'percentile', 'entropy'], default='minmax')
    p.add_argument('--samples', type=int, default=128)
    p.add_argument('--per-tensor', action='store_true', help='one scale per weight tensor (what a user retries with when per-channel fails)')
    a = p.parse_args()
    notes = []
    start = time.perf_counter()
    if a.mode == 'static':
        from onnxruntime.quantization.shape_inference import quant_pre_process
        with tempfile.TemporaryDirectory() as tmp:
            source = a.model
            pre = os.path.join(tmp, 'pre.onnx')
            try:
                quant_pre_process(a.model, pre)
                source = pre
            except Exception as e:  # the quantizer still runs on the raw model, as a user would retry it
                notes.append(f'quant_pre_process failed ({type(e).__name__}: {str(e)[:120]}); quantized the model as it is')
            method = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile, 'entropy': CalibrationMethod.Entropy}[a.method]
            quantize_static(source, a.out, NpyReader(a.calib, a.samples), quant_format=QuantFormat.QDQ, per_channel=not a.per_tensor,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=method)
    elif a.mode == 'dynamic':
        quantize_dynamic(a.model, a.out, per_channel=not a.per_tensor, weight_type=QuantType.QInt8)
    else:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        q = MatMulNBitsQuantizer(onnx.load(a.model), block_size=32, is_symmetric=True, accuracy_level=4)
        q.process()
        q.model.save_model_to_file(a.out, False)
    print(json.dumps({'seconds': time.perf_counter() - start, 'notes': notes}))


if __name__ == '__main__':
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:
        print(f'ort-reference: {type(e).__name__}: {e}', file=sys.stderr)
        sys.exit(1)
