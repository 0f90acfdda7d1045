import { TesseraError } from '@tessera/model';
import { characterSet, type CharacterSet } from './character-set.ts';
import { tagInfo, tagLabel } from './data-dictionary.ts';

/** One element of a dataset: where its value is in the buffer, and its items when it is a sequence. */
export interface DicomElement {
  tag: number;
  vr: string;
  /** Byte offset of the value in the dataset's buffer. */
  offset: number;
  /** Value length in bytes (for an undefined length: up to, not including, the sequence delimiter). */
  length: number;
  undefinedLength: boolean;
  /** Items of a sequence (SQ, or UN with undefined length read as implicit VR). */
  items?: DicomDataset[];
  /** Encapsulated pixel data: the item sequence (offset table first, then fragments). */
  encapsulated?: boolean;
}

/** A dataset (or a sequence item): its elements by tag, over a buffer. */
export interface DicomDataset {
  buffer: Buffer;
  littleEndian: boolean;
  explicitVr: boolean;
  elements: Map<number, DicomElement>;
  charset: CharacterSet;
}

export interface ReadDatasetOptions {
  littleEndian: boolean;
  explicitVr: boolean;
  offset?: number;
  end?: number;
  /** Character set of the enclosing dataset (items inherit it unless they carry their own). */
  charset?: CharacterSet;
  /** Stop before this tag (e.g. pixel data when only the header is wanted). */
  stopAtTag?: number;
}

export const ITEM = 0xfffee000;
export const ITEM_DELIMITER = 0xfffee00d;
export const SEQUENCE_DELIMITER = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;
const SPECIFIC_CHARACTER_SET = 0x00080005;
const UNDEFINED = 0xffffffff;

// VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length.
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UR', 'UT', 'UN', 'SV', 'UV']);
const KNOWN_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** Thrown for bytes that are not a valid dataset; the message says what and where. */
export function invalidDicom(message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_DICOM', message);
}

class Reader {
  readonly b: Buffer;
  readonly le: boolean;
  constructor(b: Buffer, le: boolean) {
    this.b = b;
    this.le = le;
  }
  u16(p: number): number {
    return this.le ? this.b.readUInt16LE(p) : this.b.readUInt16BE(p);
  }
  u32(p: number): number {
    return this.le ? this.b.readUInt32LE(p) : this.b.readUInt32BE(p);
  }
  tag(p: number): number {
    return ((this.u16(p) << 16) | this.u16(p + 2)) >>> 0;
  }
}

/**
 * Reads the elements of a dataset from `buffer[offset, end)`. Sequences are read
 * into items (their extents must be known to go on); values stay in the buffer and
 * are decoded on demand (see dataset-values.ts). Throws TESSERA_INVALID_DICOM with
 * the element and byte offset when the bytes are not a well-formed dataset.
 */
/**
 * The deepest nesting of sequences a dataset may have. Real instances nest a few levels
 * (structured reports a few dozen); a deeper one is refused at the door, so that nothing
 * stored is later too deep to serve (code that walks items recursively stays far from
 * the stack's limit).
 */
export const MAX_SEQUENCE_DEPTH = 64;

export function readDataset(buffer: Buffer, options: ReadDatasetOptions): DicomDataset {
  const r = new Reader(buffer, options.littleEndian);
  const end = options.end ?? buffer.length;
  const { dataset } = readElements(r, options.offset ?? 0, end, options.explicitVr, options.charset, false, options.stopAtTag);
  return dataset;
}

function readElements(
  r: Reader,
  start: number,
  end: number,
  explicitVr: boolean,
  inherited: CharacterSet | undefined,
  inUndefinedItem: boolean,
  stopAtTag?: number,
  depth = 0,
): { dataset: DicomDataset; next: number } {
  const elements = new Map<number, DicomElement>();
  const dataset: DicomDataset = { buffer: r.b, littleEndian: r.le, explicitVr, elements, charset: inherited ?? characterSet(undefined) };
  let p = start;
  // Implicit VR: "US or SS" elements are signed when the pixel representation says so.
  let usOrSs: DicomElement[] | undefined;
  while (p < end) {
    if (p + 8 > end) throw invalidDicom(`truncated: an element header at byte ${p} needs 8 bytes, ${end - p} remain`);
    const tag = r.tag(p);
    if (tag === ITEM_DELIMITER) {
      if (!inUndefinedItem) throw invalidDicom(`unexpected item delimiter at byte ${p}`);
      signUsOrSs(r, elements, usOrSs);
      return { dataset, next: p + 8 };
    }
    if (tag === ITEM || tag === SEQUENCE_DELIMITER) throw invalidDicom(`unexpected ${tag === ITEM ? 'item' : 'sequence delimiter'} tag at byte ${p} (the dataset is garbled)`);
    if (stopAtTag !== undefined && tag >= stopAtTag) {
      signUsOrSs(r, elements, usOrSs);
      return { dataset, next: p };
    }
    let vr: string;
    let length: number;
    let valueAt: number;
    let ambiguous = false;
    if (explicitVr) {
      vr = String.fromCharCode(r.b[p + 4]!, r.b[p + 5]!);
      if (!KNOWN_VRS.has(vr)) {
        throw invalidDicom(`element ${tagLabel(tag)} at byte ${p} has the value representation "${printable(vr)}", which does not exist (garbage data, or the wrong transfer syntax?)`);
      }
      if (LONG_VRS.has(vr)) {
        if (p + 12 > end) throw invalidDicom(`truncated: the header of element ${tagLabel(tag)} at byte ${p} is cut off`);
        length = r.u32(p + 8);
        valueAt = p + 12;
      } else {
        length = r.u16(p + 6);
        valueAt = p + 8;
      }
      if (vr === 'UN' && length !== UNDEFINED && r.le) {
        // A known attribute sent as UN (a sender that did not know it): its value is in
        // the transfer syntax's byte order, so it reads as the dictionary's VR (PS3.5 §6.2.2).
        // Without this, QIDO-RS and metadata would answer its UIDs as InlineBinary.
        const info = tagInfo(tag);
        if (info && info.vr !== 'UN' && info.vr !== 'SQ' && KNOWN_VRS.has(info.vr)) {
          vr = info.vr;
          ambiguous = info.usOrSs === true;
        }
      }
    } else {
      length = r.u32(p + 4);
      valueAt = p + 8;
      const info = tagInfo(tag);
      vr = info?.vr ?? (length === UNDEFINED ? 'SQ' : 'UN');
      ambiguous = info?.usOrSs === true;
    }
    const el: DicomElement = { tag, vr, offset: valueAt, length, undefinedLength: length === UNDEFINED };
    if (ambiguous) (usOrSs ??= []).push(el);
    if (length === UNDEFINED) {
      if (tag === PIXEL_DATA) {
        el.encapsulated = true;
        el.length = skipFragments(r, valueAt, end) - valueAt;
        p = valueAt + el.length + 8;
      } else if (vr === 'SQ' || vr === 'UN') {
        // An undefined-length UN is a sequence encoded in implicit VR little endian (PS3.5 §6.2.2).
        const implicit = vr === 'UN';
        const seq = readItems(implicit ? new Reader(r.b, true) : r, valueAt, end, implicit ? false : explicitVr, dataset.charset, true, depth + 1);
        el.vr = 'SQ';
        el.items = seq.items;
        el.length = seq.next - 8 - valueAt;
        p = seq.next;
      } else {
        throw invalidDicom(`element ${tagLabel(tag)} (${vr}) at byte ${p} has an undefined length, which only sequences and pixel data may have`);
      }
    } else {
      if (valueAt + length > end) {
        throw invalidDicom(`truncated: element ${tagLabel(tag)} at byte ${p} declares ${length} bytes, but only ${Math.max(0, end - valueAt)} remain`);
      }
      if (vr === 'SQ') el.items = readItems(r, valueAt, valueAt + length, explicitVr, dataset.charset, false, depth + 1).items;
      p = valueAt + length;
    }
    elements.set(tag, el);
    if (tag === SPECIFIC_CHARACTER_SET) dataset.charset = characterSet(r.b.toString('latin1', el.offset, el.offset + el.length).replace(/[\0 ]+$/, ''));
  }
  if (inUndefinedItem) throw invalidDicom(`truncated: an item that started before byte ${start} has no item delimiter`);
  signUsOrSs(r, elements, usOrSs);
  return { dataset, next: p };
}

const PIXEL_REPRESENTATION = 0x00280103;

function signUsOrSs(r: Reader, elements: Map<number, DicomElement>, list: DicomElement[] | undefined): void {
  if (!list) return;
  const pr = elements.get(PIXEL_REPRESENTATION);
  if (pr && pr.length >= 2 && r.u16(pr.offset) === 1) for (const el of list) el.vr = 'SS';
}

function readItems(
  r: Reader,
  start: number,
  end: number,
  explicitVr: boolean,
  charset: CharacterSet,
  undefinedLength: boolean,
  depth: number,
): { items: DicomDataset[]; next: number } {
  if (depth > MAX_SEQUENCE_DEPTH) {
    throw invalidDicom(`sequences nest deeper than ${MAX_SEQUENCE_DEPTH} levels (at byte ${start}); Tessera refuses such an instance, which no viewer could show`);
  }
  const items: DicomDataset[] = [];
  let p = start;
  for (;;) {
    if (!undefinedLength && p >= end) return { items, next: p };
    if (p + 8 > end) throw invalidDicom(`truncated: a sequence that starts at byte ${start} is cut off`);
    const tag = r.tag(p);
    const length = r.u32(p + 4);
    if (tag === SEQUENCE_DELIMITER) {
      if (!undefinedLength) throw invalidDicom(`unexpected sequence delimiter at byte ${p} inside a sequence of defined length`);
      return { items, next: p + 8 };
    }
    if (tag !== ITEM) throw invalidDicom(`expected a sequence item at byte ${p}, found tag ${tagLabel(tag)}`);
    if (length === UNDEFINED) {
      const item = readElements(r, p + 8, end, explicitVr, charset, true, undefined, depth);
      items.push(item.dataset);
      p = item.next;
    } else {
      if (p + 8 + length > end) throw invalidDicom(`truncated: a sequence item at byte ${p} declares ${length} bytes, but only ${end - p - 8} remain`);
      items.push(readElements(r, p + 8, p + 8 + length, explicitVr, charset, false, undefined, depth).dataset);
      p += 8 + length;
    }
  }
}

/** Walks the items of encapsulated pixel data; returns the offset of its sequence delimiter. */
function skipFragments(r: Reader, start: number, end: number): number {
  let p = start;
  for (;;) {
    if (p + 8 > end) throw invalidDicom(`truncated: the encapsulated pixel data that starts at byte ${start} has no sequence delimiter`);
    const tag = r.tag(p);
    const length = r.u32(p + 4);
    if (tag === SEQUENCE_DELIMITER) return p;
    if (tag !== ITEM) throw invalidDicom(`expected a pixel data fragment at byte ${p}, found tag ${tagLabel(tag)}`);
    if (length === UNDEFINED || p + 8 + length > end) {
      throw invalidDicom(`truncated: a pixel data fragment at byte ${p} declares ${length === UNDEFINED ? 'an undefined length' : `${length} bytes`}, but only ${end - p - 8} remain`);
    }
    p += 8 + length;
  }
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
