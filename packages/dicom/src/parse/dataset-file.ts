import { open, readFile, type FileHandle } from 'node:fs/promises';
import { tagInfo, tagLabel } from './data-dictionary.ts';
import { invalidDicom, ITEM, ITEM_DELIMITER, MAX_SEQUENCE_DEPTH, PIXEL_DATA, readDataset, SEQUENCE_DELIMITER, type DicomDataset } from './dataset-reader.ts';
import { BINARY_VRS } from './dataset-values.ts';
import { readDatasetOf, TRANSFER_SYNTAXES, type ReadOptions } from './part10-reader.ts';

/** Binary values at least this large are checked (their length fits) but not read. */
const BULK_MIN_BYTES = 64 * 1024;
/** File reads for headers go through a window this large. */
const WINDOW_BYTES = 64 * 1024;
/** When the walk meets something it cannot follow, this much from there is handed to the full reader, which names the fault. */
const TAIL_FOR_ERROR = 64 * 1024;
const UNDEFINED = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UR', 'UT', 'UN', 'SV', 'UV']);

/**
 * Reads a dataset (no meta information) from a file without holding its bulk data
 * in memory: the top-level elements are walked by their headers, pixel data and
 * binary values of 64 KiB or more are checked (their extents fit the file) and left
 * out, and the rest is read and parsed as {@link readDatasetOf} would. The dataset
 * returned lacks those bulk elements (DICOM JSON leaves them out too); everything
 * else, sequences included, is read whole. A deflated dataset is read whole (it must
 * be inflated to be read at all).
 * @throws TesseraError TESSERA_INVALID_DICOM naming what is wrong, as readDatasetOf.
 */
export async function readDatasetFile(path: string, transferSyntaxUid: string, options: ReadOptions = {}): Promise<DicomDataset> {
  const ts = TRANSFER_SYNTAXES[transferSyntaxUid];
  if (!ts || ts.deflated) return readDatasetOf(await readFile(path), transferSyntaxUid, options);
  const fh = await open(path, 'r');
  try {
    const file = new FileWindow(fh, (await fh.stat()).size);
    const kept = await new Walker(file, ts.explicitVr, ts.littleEndian).topLevel();
    return readDataset(Buffer.concat(kept), { littleEndian: ts.littleEndian, explicitVr: ts.explicitVr, stopAtTag: options.stopAtTag });
  } finally {
    await fh.close();
  }
}

/** Positional reads of a file, small ones served from one cached window. */
class FileWindow {
  readonly size: number;
  readonly #fh: FileHandle;
  #window: Buffer = Buffer.alloc(0);
  #start = 0;

  constructor(fh: FileHandle, size: number) {
    this.#fh = fh;
    this.size = size;
  }

  /** `n` bytes at `pos`; the caller checked they are within the file. */
  async bytes(pos: number, n: number): Promise<Buffer> {
    if (pos >= this.#start && pos + n <= this.#start + this.#window.length) return this.#window.subarray(pos - this.#start, pos - this.#start + n);
    if (n > WINDOW_BYTES) return this.#read(pos, n);
    this.#window = await this.#read(pos, Math.min(WINDOW_BYTES, this.size - pos));
    this.#start = pos;
    return this.#window.subarray(0, n);
  }

  async #read(pos: number, n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.#fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) throw new Error(`the file shrank while it was read (${pos + got} of ${this.size} bytes)`);
      got += bytesRead;
    }
    return buf;
  }
}

interface Header {
  tag: number;
  vr: string;
  length: number;
  valueAt: number;
}

class Walker {
  readonly #f: FileWindow;
  readonly #explicitVr: boolean;
  readonly #le: boolean;

  constructor(f: FileWindow, explicitVr: boolean, littleEndian: boolean) {
    this.#f = f;
    this.#explicitVr = explicitVr;
    this.#le = littleEndian;
  }

  /** The bytes of every top-level element except bulk ones, in order. */
  async topLevel(): Promise<Buffer[]> {
    const kept: Buffer[] = [];
    const size = this.#f.size;
    let p = 0;
    while (p < size) {
      const h = await this.#header(p, this.#explicitVr, this.#le);
      if (h === undefined || h.tag === ITEM || h.tag === ITEM_DELIMITER || h.tag === SEQUENCE_DELIMITER) {
        // Garbled or cut off: the full reader says what and where.
        kept.push(await this.#f.bytes(p, Math.min(TAIL_FOR_ERROR, size - p)));
        return kept;
      }
      let end: number;
      if (h.length === UNDEFINED) {
        if (h.tag === PIXEL_DATA) {
          p = (await this.#skipFragments(h.valueAt)) + 8;
          continue;
        }
        if (h.vr !== 'SQ' && h.vr !== 'UN') {
          throw invalidDicom(`element ${tagLabel(h.tag)} (${h.vr}) at byte ${p} has an undefined length, which only sequences and pixel data may have`);
        }
        end = await this.#skipSequence(h.valueAt, h.vr === 'UN' ? false : this.#explicitVr, h.vr === 'UN' ? true : this.#le, 1);
      } else {
        end = h.valueAt + h.length;
        if (end > size) throw invalidDicom(`truncated: element ${tagLabel(h.tag)} at byte ${p} declares ${h.length} bytes, but only ${Math.max(0, size - h.valueAt)} remain`);
        if ((h.tag === PIXEL_DATA || BINARY_VRS.has(h.vr)) && h.length >= BULK_MIN_BYTES) {
          p = end;
          continue;
        }
      }
      kept.push(await this.#f.bytes(p, end - p));
      p = end;
    }
    return kept;
  }

  /** An element header at `p`, or undefined when it is cut off or its VR does not exist. */
  async #header(p: number, explicitVr: boolean, le: boolean): Promise<Header | undefined> {
    const size = this.#f.size;
    if (p + 8 > size) return undefined;
    const b = await this.#f.bytes(p, Math.min(12, size - p));
    const u16 = (at: number): number => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
    const u32 = (at: number): number => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
    const tag = ((u16(0) << 16) | u16(2)) >>> 0;
    if (tag === ITEM || tag === ITEM_DELIMITER || tag === SEQUENCE_DELIMITER) return { tag, vr: '', length: u32(4), valueAt: p + 8 };
    if (!explicitVr) {
      const length = u32(4);
      return { tag, vr: tagInfo(tag)?.vr ?? (length === UNDEFINED ? 'SQ' : 'UN'), length, valueAt: p + 8 };
    }
    const vr = String.fromCharCode(b[4]!, b[5]!);
    if (!/^[A-Z]{2}$/.test(vr)) return undefined;
    if (!LONG_VRS.has(vr)) return { tag, vr, length: u16(6), valueAt: p + 8 };
    if (b.length < 12) return undefined;
    return { tag, vr, length: u32(8), valueAt: p + 12 };
  }

  /** Walks the items of an undefined-length sequence; returns the offset after its delimiter. */
  async #skipSequence(start: number, explicitVr: boolean, le: boolean, depth: number): Promise<number> {
    if (depth > MAX_SEQUENCE_DEPTH) {
      throw invalidDicom(`sequences nest deeper than ${MAX_SEQUENCE_DEPTH} levels (at byte ${start}); Tessera refuses such an instance, which no viewer could show`);
    }
    const size = this.#f.size;
    let p = start;
    for (;;) {
      const h = await this.#header(p, false, le);
      if (h === undefined) throw invalidDicom(`truncated: a sequence that starts at byte ${start} is cut off`);
      if (h.tag === SEQUENCE_DELIMITER) return p + 8;
      if (h.tag !== ITEM) throw invalidDicom(`expected a sequence item at byte ${p}, found tag ${tagLabel(h.tag)}`);
      if (h.length === UNDEFINED) {
        p = await this.#skipItem(p + 8, explicitVr, le, depth);
      } else {
        if (p + 8 + h.length > size) throw invalidDicom(`truncated: a sequence item at byte ${p} declares ${h.length} bytes, but only ${size - p - 8} remain`);
        p += 8 + h.length;
      }
    }
  }

  /** Walks the elements of an undefined-length item; returns the offset after its delimiter. */
  async #skipItem(start: number, explicitVr: boolean, le: boolean, depth: number): Promise<number> {
    const size = this.#f.size;
    let p = start;
    for (;;) {
      const h = await this.#header(p, explicitVr, le);
      if (h === undefined) throw invalidDicom(`truncated: an item that started at byte ${start} has no item delimiter`);
      if (h.tag === ITEM_DELIMITER) return p + 8;
      if (h.tag === ITEM || h.tag === SEQUENCE_DELIMITER) throw invalidDicom(`unexpected ${h.tag === ITEM ? 'item' : 'sequence delimiter'} tag at byte ${p} (the dataset is garbled)`);
      if (h.length !== UNDEFINED) {
        if (h.valueAt + h.length > size) throw invalidDicom(`truncated: element ${tagLabel(h.tag)} at byte ${p} declares ${h.length} bytes, but only ${Math.max(0, size - h.valueAt)} remain`);
        p = h.valueAt + h.length;
      } else if (h.tag === PIXEL_DATA) {
        p = (await this.#skipFragments(h.valueAt)) + 8;
      } else if (h.vr === 'SQ' || h.vr === 'UN') {
        p = await this.#skipSequence(h.valueAt, h.vr === 'UN' ? false : explicitVr, h.vr === 'UN' ? true : le, depth + 1);
      } else {
        throw invalidDicom(`element ${tagLabel(h.tag)} (${h.vr}) at byte ${p} has an undefined length, which only sequences and pixel data may have`);
      }
    }
  }

  /** Walks the fragments of encapsulated pixel data; returns the offset of its sequence delimiter. */
  async #skipFragments(start: number): Promise<number> {
    const size = this.#f.size;
    let p = start;
    for (;;) {
      const h = await this.#header(p, false, this.#le);
      if (h === undefined) throw invalidDicom(`truncated: the encapsulated pixel data that starts at byte ${start} has no sequence delimiter`);
      if (h.tag === SEQUENCE_DELIMITER) return p;
      if (h.tag !== ITEM) throw invalidDicom(`expected a pixel data fragment at byte ${p}, found tag ${tagLabel(h.tag)}`);
      if (h.length === UNDEFINED || p + 8 + h.length > size) {
        throw invalidDicom(`truncated: a pixel data fragment at byte ${p} declares ${h.length === UNDEFINED ? 'an undefined length' : `${h.length} bytes`}, but only ${size - p - 8} remain`);
      }
      p += 8 + h.length;
    }
  }
}
