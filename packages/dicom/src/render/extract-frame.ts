import { TesseraError } from '@tessera/model';
import type { PixelModule } from './pixel-module.ts';
import { readFragments, type Fragment } from './read-fragments.ts';

/**
 * The bytes of one frame in the stored transfer syntax: what WADO-RS serves for a frame
 * requested in that transfer syntax.
 *
 * Native pixel data is sliced by frame size. With Bits Allocated 1 frames are packed bit
 * by bit, so a frame that does not start on a byte boundary is shifted to start at bit 0 of
 * a new buffer (its last byte is zero-padded). Encapsulated pixel data is split with the
 * Basic Offset Table when it has one entry per frame; otherwise a single frame takes all
 * fragments, one fragment per frame is assumed when there are as many fragments as
 * frames, and else fragments are grouped up to each JPEG / JPEG 2000 end-of-image marker.
 * The result may be a view of `pm.pixelData.value`.
 *
 * @param index 0-based frame index; error messages use DICOM's 1-based frame numbers.
 * @throws TesseraError TESSERA_NOT_FOUND for an index outside the instance's frames.
 * @throws TesseraError TESSERA_INVALID_DICOM when the pixel data is truncated or cannot be split into frames.
 */
export function extractFrame(pm: PixelModule, index: number): Buffer {
  checkFrameIndex(pm, index);
  return pm.pixelData.encapsulated ? encapsulatedFrame(pm, index) : nativeFrame(pm, index);
}

/**
 * Checks that `index` (0-based) names one of the instance's frames.
 * @throws TesseraError TESSERA_NOT_FOUND otherwise.
 */
export function checkFrameIndex(pm: PixelModule, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= pm.numberOfFrames) {
    const plural = pm.numberOfFrames === 1 ? 'frame' : 'frames';
    throw new TesseraError(
      'TESSERA_NOT_FOUND',
      `frame ${index + 1} does not exist: the instance has ${pm.numberOfFrames} ${plural}`,
    );
  }
}

/** Bits of one native frame; YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr per pair). */
export function nativeFrameBits(pm: PixelModule): number {
  const samples = pm.photometricInterpretation === 'YBR_FULL_422' && pm.samplesPerPixel === 3 ? 2 : pm.samplesPerPixel;
  return pm.rows * pm.columns * samples * pm.bitsAllocated;
}

function nativeFrame(pm: PixelModule, index: number): Buffer {
  const value = pm.pixelData.value;
  const frameBits = nativeFrameBits(pm);
  const startBit = index * frameBits;
  const endBit = startBit + frameBits;
  if (endBit > value.length * 8) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `the pixel data is truncated, shorter than the image it claims: frame ${index + 1} of ${pm.rows} rows x ${pm.columns} columns x ${pm.samplesPerPixel} samples x ${pm.bitsAllocated} bits needs bytes ${Math.floor(startBit / 8)} to ${Math.ceil(endBit / 8)}, but the value has ${value.length} bytes`,
    );
  }
  const start = startBit >>> 3;
  const length = Math.ceil(frameBits / 8);
  const shift = startBit & 7;
  if (shift === 0) return value.subarray(start, start + length);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    const next = start + i + 1 < value.length ? value[start + i + 1]! : 0;
    out[i] = ((value[start + i]! >>> shift) | (next << (8 - shift))) & 0xff;
  }
  const tailBits = frameBits & 7;
  if (tailBits !== 0) out[length - 1]! &= (1 << tailBits) - 1;
  return out;
}

function encapsulatedFrame(pm: PixelModule, index: number): Buffer {
  const { offsets, fragments } = readFragments(pm.pixelData.value);
  if (fragments.length === 0) {
    throw new TesseraError('TESSERA_INVALID_DICOM', 'encapsulated pixel data: there is no fragment after the Basic Offset Table');
  }
  const frames = pm.numberOfFrames;
  const groups = framesFromOffsetTable(offsets, fragments, frames) ?? framesWithoutOffsetTable(fragments, frames);
  const group = groups[index]!;
  return group.length === 1 ? group[0]!.data : Buffer.concat(group.map((f) => f.data));
}

/**
 * Groups fragments by the Basic Offset Table. A table that does not give one ascending
 * offset per frame, each on a fragment, is ignored (as if empty) rather than trusted:
 * some writers fill it wrongly, and the fragments themselves still say where frames are.
 */
function framesFromOffsetTable(offsets: number[], fragments: Fragment[], frames: number): Fragment[][] | undefined {
  if (offsets.length !== frames) return undefined;
  const starts = new Map(fragments.map((f, i) => [f.offset, i]));
  const firsts = offsets.map((o) => starts.get(o));
  if (firsts.some((f, i) => f === undefined || (i > 0 && f <= firsts[i - 1]!))) return undefined;
  return firsts.map((first, i) => fragments.slice(first, firsts[i + 1] ?? fragments.length));
}

function framesWithoutOffsetTable(fragments: Fragment[], frames: number): Fragment[][] {
  if (frames === 1) return [fragments];
  if (fragments.length === frames) return fragments.map((f) => [f]);
  const groups: Fragment[][] = [];
  let current: Fragment[] = [];
  for (const fragment of fragments) {
    current.push(fragment);
    if (endsWithEndOfImage(fragment.data)) {
      groups.push(current);
      current = [];
    }
  }
  if (current.length > 0) groups.push(current);
  if (groups.length !== frames) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `encapsulated pixel data: cannot split ${fragments.length} fragments into ${frames} frames without a Basic Offset Table (found ${groups.length} end-of-image markers)`,
    );
  }
  return groups;
}

/** JPEG EOI and JPEG 2000 EOC are both FF D9; a fragment may add one padding byte to reach an even length. */
function endsWithEndOfImage(data: Buffer): boolean {
  const n = data.length;
  if (n >= 2 && data[n - 2] === 0xff && data[n - 1] === 0xd9) return true;
  return n >= 3 && data[n - 3] === 0xff && data[n - 2] === 0xd9 && data[n - 1] === 0x00;
}
