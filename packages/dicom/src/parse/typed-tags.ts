import { tagInfo } from './data-dictionary.ts';
import type { DicomJson } from './dataset-values.ts';

export type TypedValue = string | number | null | TypedValue[] | { [k: string]: TypedValue };

/** `20240131` -> `2024-01-31` (partial or odd values stay as they are). */
function isoDate(v: string): string {
  return /^\d{8}$/.test(v) ? `${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6, 8)}` : v;
}

/** `101530.25` -> `10:15:30.25`. */
function isoTime(v: string): string {
  const m = /^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$/.exec(v);
  if (!m) return v;
  return [m[1], m[2] ?? '00', m[3] ?? '00'].join(':') + (m[4] ?? '');
}

function one(vr: string, v: unknown): TypedValue {
  if (v === null || v === undefined) return null;
  if (vr === 'PN' && typeof v === 'object') {
    const pn = v as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    return [pn.Alphabetic, pn.Ideographic, pn.Phonetic].filter((x) => x !== undefined).join('=') || null;
  }
  if (vr === 'DA' && typeof v === 'string') return isoDate(v);
  if (vr === 'TM' && typeof v === 'string') return isoTime(v);
  if (vr === 'SQ' && typeof v === 'object') return typedTags(v as DicomJson);
  return v as TypedValue;
}

/**
 * The platform's typed view of DICOM JSON: keyword -> value, numbers as numbers,
 * dates as `YYYY-MM-DD`, times as `HH:MM:SS`, person names as text, several values
 * as arrays, sequences as lists of objects. Private and unknown tags keep their
 * hex tag as the key.
 */
export function typedTags(json: DicomJson): Record<string, TypedValue> {
  const out: Record<string, TypedValue> = {};
  for (const [hex, el] of Object.entries(json)) {
    const keyword = tagInfo(parseInt(hex, 16) >>> 0)?.keyword ?? hex;
    if (el.Value === undefined) {
      if (el.InlineBinary === undefined && el.BulkDataURI === undefined) out[keyword] = null;
      continue;
    }
    const values = el.Value.map((v) => one(el.vr, v));
    out[keyword] = values.length === 1 && el.vr !== 'SQ' ? values[0]! : values;
  }
  return out;
}
