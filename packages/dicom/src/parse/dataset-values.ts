import type { DicomDataset, DicomElement } from './dataset-reader.ts';
import { tagHex } from './data-dictionary.ts';

// Text VRs decoded with the dataset's character set; the others are ASCII.
const CHARSET_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN']);
// VRs whose value is a single string (a backslash is text, not a separator).
const SINGLE_VALUE_TEXT = new Set(['LT', 'ST', 'UT', 'UR']);
export const STRING_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
export const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** The raw text of an element, decoded, without trailing padding. */
export function elementText(ds: DicomDataset, el: DicomElement): string {
  const bytes = ds.buffer.subarray(el.offset, el.offset + el.length);
  const text = CHARSET_VRS.has(el.vr) ? ds.charset.decode(bytes) : bytes.toString('latin1', 0, bytes.length);
  // Leading spaces are significant in LT/ST/UT; trailing spaces and NUL padding never are.
  return SINGLE_VALUE_TEXT.has(el.vr) ? text.replace(/[\0 ]+$/, '') : text.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/** The string values of a text element (split at backslashes where the VR allows several). */
export function elementStrings(ds: DicomDataset, el: DicomElement): string[] {
  if (el.length === 0) return [];
  const text = elementText(ds, el);
  if (SINGLE_VALUE_TEXT.has(el.vr)) return [text];
  return text.split('\\').map((s) => (el.vr === 'UI' ? s.replace(/\0+$/, '').trim() : s.trim()));
}

/** Numeric values of a binary-number (US, SS, UL, SL, FL, FD, SV, UV) or number-string (IS, DS) element. */
export function elementNumbers(ds: DicomDataset, el: DicomElement): number[] {
  const b = ds.buffer;
  const le = ds.littleEndian;
  const out: number[] = [];
  const { offset: o, length: n } = el;
  switch (el.vr) {
    case 'US':
      for (let i = 0; i + 2 <= n; i += 2) out.push(le ? b.readUInt16LE(o + i) : b.readUInt16BE(o + i));
      return out;
    case 'SS':
      for (let i = 0; i + 2 <= n; i += 2) out.push(le ? b.readInt16LE(o + i) : b.readInt16BE(o + i));
      return out;
    case 'UL':
      for (let i = 0; i + 4 <= n; i += 4) out.push(le ? b.readUInt32LE(o + i) : b.readUInt32BE(o + i));
      return out;
    case 'SL':
      for (let i = 0; i + 4 <= n; i += 4) out.push(le ? b.readInt32LE(o + i) : b.readInt32BE(o + i));
      return out;
    case 'FL':
      for (let i = 0; i + 4 <= n; i += 4) out.push(le ? b.readFloatLE(o + i) : b.readFloatBE(o + i));
      return out;
    case 'FD':
      for (let i = 0; i + 8 <= n; i += 8) out.push(le ? b.readDoubleLE(o + i) : b.readDoubleBE(o + i));
      return out;
    case 'SV':
      for (let i = 0; i + 8 <= n; i += 8) out.push(Number(le ? b.readBigInt64LE(o + i) : b.readBigInt64BE(o + i)));
      return out;
    case 'UV':
      for (let i = 0; i + 8 <= n; i += 8) out.push(Number(le ? b.readBigUInt64LE(o + i) : b.readBigUInt64BE(o + i)));
      return out;
    case 'IS':
    case 'DS':
      for (const s of elementStrings(ds, el)) {
        if (s === '') continue;
        const v = Number(s);
        if (Number.isFinite(v)) out.push(v);
      }
      return out;
    default:
      return out;
  }
}

/** First string value of a tag, or undefined when absent or empty. */
export function getString(ds: DicomDataset, tag: number): string | undefined {
  const el = ds.elements.get(tag);
  if (!el || el.length === 0 || el.items) return undefined;
  const v = elementStrings(ds, el)[0];
  return v === '' ? undefined : v;
}

/** First numeric value of a tag, or undefined. */
export function getNumber(ds: DicomDataset, tag: number): number | undefined {
  const el = ds.elements.get(tag);
  if (!el || el.length === 0) return undefined;
  return elementNumbers(ds, el)[0];
}

/** A DICOM JSON (PS3.18 §F.2) person name from its `Alphabetic=Ideographic=Phonetic` form. */
export function personName(value: string): { Alphabetic?: string; Ideographic?: string; Phonetic?: string } {
  const [a, i, p] = value.split('=');
  const pn: { Alphabetic?: string; Ideographic?: string; Phonetic?: string } = {};
  if (a) pn.Alphabetic = a;
  if (i) pn.Ideographic = i;
  if (p) pn.Phonetic = p;
  return pn;
}

export interface DicomJsonOptions {
  /** Binary values longer than this (bytes) become a BulkDataURI, shorter ones InlineBinary (default 256). */
  inlineBinaryMax?: number;
  /** URI of a bulk value, by its tag path (top-level: one tag); without it, bulk values are left out. */
  bulkDataUri?: (path: number[]) => string | undefined;
  /** Leave out these top-level tags (e.g. pixel data). */
  skip?: ReadonlySet<number>;
  /** Leave out group 0002 (the file meta information), as DICOM JSON metadata does. */
  skipMeta?: boolean;
  /** Only these top-level tags (those present). */
  only?: readonly number[];
}

export type DicomJsonValue = { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string };
export type DicomJson = Record<string, DicomJsonValue>;

/** The dataset in the DICOM JSON model (PS3.18 Annex F), keys in tag order. */
export function toDicomJson(ds: DicomDataset, options: DicomJsonOptions = {}, path: number[] = []): DicomJson {
  const out: DicomJson = {};
  const tags = path.length === 0 && options.only ? options.only.filter((t) => ds.elements.has(t)) : [...ds.elements.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    if (path.length === 0 && (options.skip?.has(tag) || (options.skipMeta && tag >>> 16 === 2))) continue;
    // Group lengths are deprecated and meaningless once the encoding changes.
    if ((tag & 0xffff) === 0) continue;
    const el = ds.elements.get(tag)!;
    const v = elementJson(ds, el, options, [...path, tag]);
    if (v) out[tagHex(tag)] = v;
  }
  return out;
}

function elementJson(ds: DicomDataset, el: DicomElement, options: DicomJsonOptions, path: number[]): DicomJsonValue | undefined {
  const vr = el.vr;
  if (el.items) {
    return el.items.length ? { vr: 'SQ', Value: el.items.map((item) => toDicomJson(item, options, path)) } : { vr: 'SQ' };
  }
  if (el.length === 0) return { vr };
  if (BINARY_VRS.has(vr) || el.encapsulated) {
    if (el.length <= (options.inlineBinaryMax ?? 256) && !el.encapsulated) {
      return { vr, InlineBinary: ds.buffer.subarray(el.offset, el.offset + el.length).toString('base64') };
    }
    const uri = options.bulkDataUri?.(path);
    return uri ? { vr, BulkDataURI: uri } : undefined;
  }
  if (vr === 'PN') return { vr, Value: elementStrings(ds, el).map((s) => (s ? personName(s) : {})) };
  if (vr === 'IS' || vr === 'DS') {
    const values = elementStrings(ds, el).map((s) => (s === '' ? null : Number(s)));
    return { vr, Value: values.map((n) => (n === null || Number.isFinite(n) ? n : null)) };
  }
  if (vr === 'AT') {
    const values: string[] = [];
    for (let i = 0; i + 4 <= el.length; i += 4) {
      const g = ds.littleEndian ? ds.buffer.readUInt16LE(el.offset + i) : ds.buffer.readUInt16BE(el.offset + i);
      const e = ds.littleEndian ? ds.buffer.readUInt16LE(el.offset + i + 2) : ds.buffer.readUInt16BE(el.offset + i + 2);
      values.push(tagHex(((g << 16) | e) >>> 0));
    }
    return { vr, Value: values };
  }
  if (STRING_VRS.has(vr)) return { vr, Value: elementStrings(ds, el).map((s) => (s === '' ? null : s)) };
  return { vr, Value: elementNumbers(ds, el) };
}
