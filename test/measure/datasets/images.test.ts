import t from 'tap';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { decodeImage, imageKind, resizeBilinear, writePixels, type Rgba } from '../../../src/measure/datasets/image-ops.js';
import { listImageFolder, openImageFolder, pixelPlan } from '../../../src/measure/datasets/images.js';
import type { InputSpec } from '../../../src/measure/inputs.js';
import type { DataBatch } from '../../../src/measure/datasets/source.js';

function solid(w: number, h: number, rgb: [number, number, number]): Rgba {
  const data = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set([...rgb, 255], i * 4);
  return { width: w, height: h, data };
}
function pngBytes(img: Rgba): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.data);
  return PNG.sync.write(png);
}
const jpegBytes = (img: Rgba) => jpeg.encode({ width: img.width, height: img.height, data: Buffer.from(img.data) }, 95).data;

const spec = (shape: InputSpec['shape'], dtype: InputSpec['dtype'] = 'float32'): InputSpec => ({ name: 'image', type: dtype ?? 'float32', dtype, shape });

async function all(src: { batches: (o?: { batchSize?: number }) => AsyncIterable<DataBatch> }, batchSize: number): Promise<DataBatch[]> {
  const out: DataBatch[] = [];
  for await (const b of src.batches({ batchSize })) out.push(b);
  return out;
}

t.test('decode PNG and JPEG by content', async (t) => {
  const img = solid(3, 2, [200, 100, 50]);
  const p = decodeImage(pngBytes(img));
  t.same([p.width, p.height], [3, 2]);
  t.same([...p.data.subarray(0, 4)], [200, 100, 50, 255], 'PNG is lossless');
  const j = decodeImage(jpegBytes(img));
  t.same([j.width, j.height], [3, 2]);
  t.ok(Math.abs(j.data[0] - 200) <= 3 && Math.abs(j.data[1] - 100) <= 3 && Math.abs(j.data[2] - 50) <= 3, `JPEG solid colour within 3 levels: ${[...j.data.subarray(0, 3)]}`);
  t.equal(imageKind(new Uint8Array([0x47, 0x49, 0x46, 0x38])), undefined, 'GIF is not read');
  t.throws(() => decodeImage(new Uint8Array([1, 2, 3])), /not a PNG or JPEG/);
});

t.test('bilinear resize with half-pixel centres', async (t) => {
  const row: Rgba = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 255, 255, 255, 255, 255]) };
  const up = resizeBilinear(row, 4, 1);
  t.same([0, 1, 2, 3].map((x) => up.data[x * 4]), [0, 64, 191, 255], 'as OpenCV INTER_LINEAR');
  const four: Rgba = { width: 4, height: 1, data: new Uint8Array([10, 20, 30, 40].flatMap((v) => [v, v, v, 255])) };
  const down = resizeBilinear(four, 2, 1);
  t.same([down.data[0], down.data[4]], [15, 35], 'halving averages neighbour pairs');
  t.equal(resizeBilinear(four, 4, 1), four, 'same size: untouched');
});

t.test('pixels to tensor values: layout, grey, mean/std', async (t) => {
  const img: Rgba = { width: 2, height: 1, data: new Uint8Array([255, 0, 0, 255, 0, 0, 255, 255]) };
  const nchw = new Float32Array(6);
  writePixels(img, { layout: 'NCHW', channels: 3, scale: 1 / 255, mean: [0], std: [1] }, nchw, 0);
  t.same([...nchw], [1, 0, 0, 0, 0, 1], 'channel planes: R R, G G, B B');
  const nhwc = new Float32Array(6);
  writePixels(img, { layout: 'NHWC', channels: 3, scale: 1 / 255, mean: [0], std: [1] }, nhwc, 0);
  t.same([...nhwc], [1, 0, 0, 0, 0, 1], 'interleaved: RGB RGB');
  const norm = new Float32Array(6);
  writePixels(img, { layout: 'NCHW', channels: 3, scale: 1 / 255, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 1] }, norm, 0);
  t.same([...norm], [1, -1, -1, -1, 0, 1]);
  const grey = new Float32Array(4);
  writePixels(img, { layout: 'NCHW', channels: 1, scale: 1, mean: [0], std: [1] }, grey, 1);
  t.ok(Math.abs(grey[2] - 0.299 * 255) < 1e-3 && Math.abs(grey[3] - 0.114 * 255) < 1e-3, `ITU-R 601 luma, second example: ${grey[2]}, ${grey[3]}`);
});

t.test('layout and size from the model input; flags when it has none', async (t) => {
  t.match(pixelPlan(spec(['N', 3, 224, 200]), {}), { layout: { layout: 'NCHW', channels: 3 }, size: [224, 200] });
  t.match(pixelPlan(spec([1, 64, 64, 1]), {}), { layout: { layout: 'NHWC', channels: 1 }, size: [64, 64] });
  t.throws(() => pixelPlan(spec(['N', 3, 'h', 'w']), {}), { code: 'USAGE', message: /no fixed height\/width.*--image-size/ });
  t.match(pixelPlan(spec(['N', 3, 'h', 'w']), { size: [32, 48] }), { size: [32, 48] });
  t.throws(() => pixelPlan(spec(['N', 3, 8, 8]), { mean: [1, 2] }), { code: 'USAGE', message: /--mean gives 2 values; give 1 or 3/ });
  t.throws(() => pixelPlan(spec(['N', 8]), {}), { code: 'USAGE', message: /rank 2/ });
  t.match(pixelPlan(undefined, { size: [8, 8] }).notes, [/NCHW \(default/]);
});

t.test('class folders become labels; batches stream in order', async (t) => {
  const dir = t.testdir({});
  mkdirSync(join(dir, 'cat')); mkdirSync(join(dir, 'dog')); mkdirSync(join(dir, 'empty'));
  writeFileSync(join(dir, 'cat/a.png'), pngBytes(solid(4, 4, [255, 0, 0])));
  writeFileSync(join(dir, 'cat/b.JPG'), jpegBytes(solid(8, 8, [0, 255, 0])));
  writeFileSync(join(dir, 'dog/c.png'), pngBytes(solid(2, 2, [0, 0, 255])));
  writeFileSync(join(dir, 'dog/notes.txt'), 'not an image');
  const src = await openImageFolder(dir, spec(['N', 3, 4, 4]), {});
  t.same(src.classes, ['cat', 'dog'], 'sorted names; a folder without images is no class');
  t.equal(src.count, 3);
  const batches = await all(src, 2);
  t.equal(batches.length, 2);
  t.same(batches.map((b) => Array.from(b.labels!)), [[0, 0], [1]]);
  const x = batches[0].feeds.image;
  t.same(x.dims, [2, 3, 4, 4]);
  const f = x.data as Float32Array;
  t.same([f[0], f[16], f[32]], [1, 0, 0], 'first image: red, scaled to 0..1');
  t.ok(Math.abs(f[48 + 16] - 1) < 0.02, 'second image (JPEG, downscaled 8→4): green');
  t.same(batches[1].feeds.image.dims, [1, 3, 4, 4], 'the tail batch is smaller');
  t.match(src.notes.join('\n'), /3 images .* in 2 classes .*resized to 4x4 NCHW/);
});

t.test('integer class folders keep their numbers as labels', async (t) => {
  const dir = t.testdir({});
  for (const c of ['10', '2', '0']) { mkdirSync(join(dir, c)); writeFileSync(join(dir, c, 'x.png'), pngBytes(solid(1, 1, [9, 9, 9]))); }
  const { files, classes } = await listImageFolder(dir);
  t.same(files.map((f) => f.label), [0, 2, 10], 'numeric order, label = folder number');
  t.equal(classes!.length, 11);
  t.equal(classes![10], '10');
  t.equal(classes![5], '', 'missing classes leave gaps');
});

t.test('loose images: no labels; uint8 inputs get raw pixels', async (t) => {
  const dir = t.testdir({});
  writeFileSync(join(dir, 'one.png'), pngBytes(solid(2, 2, [10, 20, 30])));
  const src = await openImageFolder(dir, spec([1, 2, 2, 3], 'uint8'), {});
  t.equal(src.classes, undefined);
  const [b] = await all(src, 1);
  t.equal(b.labels, undefined);
  t.equal(b.feeds.image.dtype, 'uint8');
  t.same([...(b.feeds.image.data as Uint8Array).subarray(0, 3)], [10, 20, 30], 'NHWC raw bytes');
});

t.test('errors name the file or folder', async (t) => {
  const dir = t.testdir({ cls: { 'bad.png': 'not really a png' }, text: { 'a.txt': 'x' } });
  const src = await openImageFolder(dir, spec(['N', 3, 2, 2]), {});
  await t.rejects(all(src, 4), { code: 'DATASET_CORRUPT', message: /cls\/bad\.png: cannot decode the image/ });
  await t.rejects(openImageFolder(join(dir, 'missing'), undefined, { size: [2, 2] }), { code: 'DATASET_NOT_FOUND', message: /missing: no such folder/ });
  await t.rejects(openImageFolder(join(dir, 'text'), undefined, { size: [2, 2] }), { code: 'DATASET_NOT_FOUND', message: /no \.png\/\.jpg\/\.jpeg images/ });
  await t.rejects(openImageFolder(dir, spec(['N', 3, 2, 2], 'int64'), {}), { code: 'USAGE', message: /takes int64/ });
});
