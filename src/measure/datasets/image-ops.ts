// Pixel work for image datasets, pure: decode PNG/JPEG (pngjs, jpeg-js: pure JS, no native code to build on a
// device), bilinear resize, and the conversion to a normalised model input.
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/** 8-bit RGBA pixels, row-major. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ImageKind = 'png' | 'jpeg';

/** By content, not by name: a .jpg that is really a PNG still decodes. */
export function imageKind(bytes: Uint8Array): ImageKind | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

/** Decodes PNG (any bit depth, rescaled to 8 bits) or baseline/progressive JPEG. Throws Error with the reason. */
export function decodeImage(bytes: Uint8Array): Rgba {
  const kind = imageKind(bytes);
  if (kind === 'png') {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
  }
  if (kind === 'jpeg') {
    // The memory cap keeps a hostile or huge file from exhausting a small device.
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 256 });
    return { width: img.width, height: img.height, data: img.data };
  }
  throw new Error('not a PNG or JPEG file (unknown signature)');
}

/**
 * Bilinear resize with half-pixel centres (what PIL, OpenCV INTER_LINEAR and ONNX Resize "half_pixel" do), so a
 * model sees the same pixels it was trained on. No antialiasing: heavy downscaling aliases, as it does in OpenCV.
 */
export function resizeBilinear(src: Rgba, width: number, height: number): Rgba {
  if (src.width === width && src.height === height) return src;
  const out = new Uint8Array(width * height * 4);
  const sx = src.width / width, sy = src.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, src.height - 1), wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), src.width - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, src.width - 1), wx = fx - x0;
      const a = (y0 * src.width + x0) * 4, b = (y0 * src.width + x1) * 4;
      const c = (y1 * src.width + x0) * 4, d = (y1 * src.width + x1) * 4;
      const o = (y * width + x) * 4;
      for (let k = 0; k < 4; k++) {
        const top = src.data[a + k] + (src.data[b + k] - src.data[a + k]) * wx;
        const bottom = src.data[c + k] + (src.data[d + k] - src.data[c + k]) * wx;
        out[o + k] = Math.round(top + (bottom - top) * wy);
      }
    }
  }
  return { width, height, data: out };
}

export interface PixelLayout {
  layout: 'NCHW' | 'NHWC';
  channels: 1 | 3;
  /** applied as (pixel · scale − mean[c]) / std[c]; one value or one per channel */
  scale: number;
  mean: number[];
  std: number[];
}

/**
 * Writes one resized image into `out` at example `index` (float32 normalised, or raw bytes for a uint8 input).
 * Grey is ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), as PIL's "L" mode; alpha is dropped.
 */
export function writePixels(img: Rgba, p: PixelLayout, out: Float32Array | Uint8Array, index: number): void {
  const hw = img.width * img.height;
  const base = index * hw * p.channels;
  const raw = out instanceof Uint8Array;
  for (let i = 0; i < hw; i++) {
    const r = img.data[i * 4], g = img.data[i * 4 + 1], b = img.data[i * 4 + 2];
    const values = p.channels === 1 ? [0.299 * r + 0.587 * g + 0.114 * b] : [r, g, b];
    for (let c = 0; c < p.channels; c++) {
      const at = p.layout === 'NCHW' ? base + c * hw + i : base + i * p.channels + c;
      if (raw) out[at] = Math.round(values[c]);
      else out[at] = (values[c] * p.scale - p.mean[p.mean.length === 1 ? 0 : c]) / p.std[p.std.length === 1 ? 0 : c];
    }
  }
}
