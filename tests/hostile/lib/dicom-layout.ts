/**
 * Where things are in a DICOM Part 10 file, for the mutator: the meta header's end,
 * its transfer syntax and UIDs, and the offsets of the dataset's elements (also inside
 * sequences). Lenient on purpose: it stops at the first thing it cannot follow and
 * returns what it found, since its input is often what it is about to break.
 */

export interface ElementAt {
  /** Offset of the tag, relative to the dataset's start. */
  offset: number;
  group: number;
  element: number;
  /** Two-letter VR when explicit, else undefined. */
  vr: string | undefined;
  vrOffset: number | undefined;
  lengthOffset: number;
  /** 2 (explicit VR short form) or 4. */
  lengthSize: 2 | 4;
  valueOffset: number;
  length: number;
}

export interface FileLayout {
  /** Byte offset of the dataset (after the meta header); 0 when the file has no meta header. */
  datasetStart: number;
  transferSyntax: string;
  sopClassUid: string | undefined;
  sopInstanceUid: string | undefined;
  elements: ElementAt[];
}

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflated: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
} as const;

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const text = (b: Buffer, at: number, length: number): string => b.toString('latin1', at, at + length).replace(/[\0 ]+$/, '');

export function layoutOf(file: Buffer): FileLayout {
  let datasetStart = 0;
  let transferSyntax: string = TS.implicitLE;
  let sopClassUid: string | undefined;
  let sopInstanceUid: string | undefined;
  if (file.length >= 132 && file.toString('latin1', 128, 132) === 'DICM') {
    let pos = 132;
    while (pos + 8 <= file.length && file.readUInt16LE(pos) === 0x0002) {
      const element = file.readUInt16LE(pos + 2);
      const vr = file.toString('latin1', pos + 4, pos + 6);
      const long = LONG_VRS.has(vr);
      const length = long ? file.readUInt32LE(pos + 8) : file.readUInt16LE(pos + 6);
      const value = pos + (long ? 12 : 8);
      if (value + length > file.length) break;
      if (element === 0x0010) transferSyntax = text(file, value, length);
      if (element === 0x0002) sopClassUid = text(file, value, length);
      if (element === 0x0003) sopInstanceUid = text(file, value, length);
      pos = value + length;
    }
    datasetStart = pos;
  }
  const elements = walk(file.subarray(datasetStart), transferSyntax);
  return { datasetStart, transferSyntax, sopClassUid, sopInstanceUid, elements };
}

function walk(ds: Buffer, transferSyntax: string): ElementAt[] {
  const explicit = transferSyntax !== TS.implicitLE;
  const big = transferSyntax === TS.explicitBE;
  const u16 = (at: number): number => (big ? ds.readUInt16BE(at) : ds.readUInt16LE(at));
  const u32 = (at: number): number => (big ? ds.readUInt32BE(at) : ds.readUInt32LE(at));
  const out: ElementAt[] = [];
  // Inside encapsulated pixel data the items are fragments: skip them by their length.
  let fragmentsUntilDelimiter = false;
  let pos = 0;
  while (pos + 8 <= ds.length && out.length < 5000) {
    const group = u16(pos);
    const element = u16(pos + 2);
    if (group === 0xfffe) {
      const length = u32(pos + 4);
      if (element === 0xe0dd) fragmentsUntilDelimiter = false;
      if (fragmentsUntilDelimiter && element === 0xe000 && length !== 0xffffffff) pos += 8 + length;
      else pos += 8;
      continue;
    }
    let vr: string | undefined;
    let vrOffset: number | undefined;
    let lengthOffset = pos + 4;
    let lengthSize: 2 | 4 = 4;
    if (explicit) {
      vr = ds.toString('latin1', pos + 4, pos + 6);
      if (!/^[A-Z]{2}$/.test(vr)) break;
      vrOffset = pos + 4;
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > ds.length) break;
        lengthOffset = pos + 8;
      } else {
        lengthOffset = pos + 6;
        lengthSize = 2;
      }
    }
    const length = lengthSize === 2 ? u16(lengthOffset) : u32(lengthOffset);
    const valueOffset = lengthOffset + lengthSize;
    out.push({ offset: pos, group, element, vr, vrOffset, lengthOffset, lengthSize, valueOffset, length });
    if (length === 0xffffffff) {
      // A sequence or encapsulated pixel data: go on inside it.
      if (group === 0x7fe0 && element === 0x0010) fragmentsUntilDelimiter = true;
      pos = valueOffset;
    } else if (vr === 'SQ') {
      pos = valueOffset; // defined-length sequence: its items follow
    } else {
      if (valueOffset + length > ds.length) break;
      pos = valueOffset + length;
    }
  }
  return out;
}
