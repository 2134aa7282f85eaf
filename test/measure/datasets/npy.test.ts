import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { NpyFile, encodeNpy, parseNpy, parseNpyHeader, readNpz } from '../../../src/measure/datasets/npy.js';

/** A .npy file as numpy.save writes it (version 1.0, header padded to 64 bytes). */
function npy(descr: string, shape: number[], data: ArrayBufferView, fortran = false): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

t.test('parses float32, int64, bool, big-endian and Fortran-order arrays', async (t) => {
  const f = parseNpy(npy('<f4', [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6)));
  t.same(f.dims, [2, 3]);
  t.equal(f.dtype, 'float32');
  t.same([...(f.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  const i = parseNpy(npy('<i8', [2], BigInt64Array.of(-5n, 7n)));
  t.same([...(i.data as BigInt64Array)], [-5n, 7n]);
  t.equal(parseNpy(npy('|b1', [3], Uint8Array.of(1, 0, 1))).dtype, 'bool');
  const be = new DataView(new ArrayBuffer(8));
  be.setFloat32(0, 1.5, false); be.setFloat32(4, -2, false);
  t.same([...(parseNpy(npy('>f4', [2], be)).data as Float32Array)], [1.5, -2], 'big-endian bytes are swapped');
  // Fortran order: columns first. [[1,2,3],[4,5,6]] is stored 1,4,2,5,3,6.
  const fo = parseNpy(npy('<f4', [2, 3], Float32Array.of(1, 4, 2, 5, 3, 6), true));
  t.same([...(fo.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
});

t.test('encodeNpy writes what parseNpy (and numpy) read back: 64-byte aligned header, every dtype', async (t) => {
  const cases = [
    { dtype: 'float32' as const, dims: [2, 1, 2, 3], data: Float32Array.from({ length: 12 }, (_, i) => i / 3 - 1) },
    { dtype: 'int64' as const, dims: [3], data: BigInt64Array.of(-1n, 0n, 9007199254740993n) },
    { dtype: 'uint8' as const, dims: [2, 2], data: Uint8Array.of(0, 1, 254, 255) },
    { dtype: 'float16' as const, dims: [1], data: Uint16Array.of(0x3c00) },
  ];
  for (const c of cases) {
    const bytes = encodeNpy(c);
    const h = parseNpyHeader(bytes);
    t.equal(h.dataOffset % 64, 0, `${c.dtype}: data starts on a 64-byte boundary`);
    const back = parseNpy(bytes);
    t.equal(back.dtype, c.dtype);
    t.same(back.dims, c.dims);
    t.same(Array.from(back.data as ArrayLike<number | bigint>), Array.from(c.data as ArrayLike<number | bigint>));
  }
  t.match(new TextDecoder('latin1').decode(encodeNpy(cases[2]).subarray(10, 60)), "'descr': '|u1'", 'one-byte types carry no byte order');
});

t.test('clear errors for what it cannot read', async (t) => {
  t.throws(() => parseNpyHeader(new TextEncoder().encode('PK\x03\x04 not numpy')), { code: 'DATASET_CORRUPT', message: /no \\x93NUMPY magic/ });
  t.throws(() => parseNpy(npy('<c8', [1], new Float32Array(2))), { message: /numpy dtype '<c8' is not supported/ });
  const whole = npy('<f4', [4], Float32Array.of(1, 2, 3, 4));
  t.throws(() => parseNpy(whole.subarray(0, whole.length - 3)), { message: /truncated.*needs 16 data bytes/ });
});

t.test('NpyFile reads rows on demand; .npz members come back by key', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'x.npy');
  await writeFile(path, npy('<f4', [5, 2], Float32Array.from({ length: 10 }, (_, k) => k)));
  const f = await NpyFile.open(path);
  t.equal(f.rows, 5);
  const r = await f.readRows(3, 10);
  t.same(r.dims, [2, 2], 'clipped at the end');
  t.same([...(r.data as Float32Array)], [6, 7, 8, 9]);
  await f.close();
  await t.rejects(NpyFile.open(join(dir, 'missing.npy')), { code: 'DATASET_NOT_FOUND' });
  const z = join(dir, 'd.npz');
  await writeFile(z, zipSync({ 'input.npy': npy('<f4', [1, 2], Float32Array.of(1, 2)), 'label.npy': npy('<i8', [1], BigInt64Array.of(3n)) }));
  const arrays = await readNpz(z);
  t.same(Object.keys(arrays).sort(), ['input', 'label']);
  await writeFile(join(dir, 'bad.npz'), 'not a zip');
  await t.rejects(readNpz(join(dir, 'bad.npz')), { code: 'DATASET_CORRUPT', message: /not a readable .npz/ });
});
