import dcmjs from 'dcmjs';

/** What the data dictionary says of a tag. */
export interface TagInfo {
  vr: string;
  keyword: string;
  /** The dictionary's VR is "US or SS": signed when the pixel representation is 1. */
  usOrSs?: boolean;
}

const dictionary = new Map<number, TagInfo>();
const byKeyword = new Map<string, number>();
/** Repeating groups (50xx, 60xx) are keyed with their group's low byte cleared. */
const repeating = new Map<number, TagInfo>();

// The dictionary's pseudo-VRs ("ox" = OB or OW, "xs" = US or SS, ...) resolved to
// what an implicit-VR reader must assume; OW/US are what DICOM's PS3.5 Annex A uses.
const PSEUDO_VR: Record<string, string> = { ox: 'OW', xs: 'US', lt: 'US', up: 'UL', na: 'UN' };

// dcmjs ships the standard's data dictionary; we only index it by number.
for (const entry of Object.values(dcmjs.data.DicomMetaDictionary.nameMap) as { tag: string; vr: string; name: string }[]) {
  const m = /^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$/.exec(entry.tag);
  if (!m) continue;
  const vr = PSEUDO_VR[entry.vr] ?? entry.vr;
  const info: TagInfo = entry.vr === 'xs' ? { vr, keyword: entry.name, usOrSs: true } : { vr, keyword: entry.name };
  if (m[1]!.includes('x') || m[2]!.includes('x')) {
    const tag = parseInt(m[1]!.replace(/x/g, '0') + m[2]!.replace(/x/g, '0'), 16) >>> 0;
    repeating.set(tag, info);
  } else {
    const tag = parseInt(m[1]! + m[2]!, 16) >>> 0;
    dictionary.set(tag, info);
    byKeyword.set(entry.name, tag);
  }
}

/** The dictionary entry of a tag, undefined for private and unknown tags. */
export function tagInfo(tag: number): TagInfo | undefined {
  const info = dictionary.get(tag);
  if (info) return info;
  const group = tag >>> 16;
  if ((group & 0xff00) === 0x6000 || (group & 0xff00) === 0x5000) return repeating.get((tag & 0xff00ffff) >>> 0);
  if ((tag & 0xffff) === 0 && (group & 1) === 0) return { vr: 'UL', keyword: 'GroupLength' };
  return undefined;
}

/** Tag number of a keyword such as `PatientName`, or undefined. */
export function tagOfKeyword(keyword: string): number | undefined {
  return byKeyword.get(keyword);
}

/** `0010,0010` style or `00100010` hex, or a keyword, to a tag number; undefined when neither. */
export function parseTagRef(ref: string): number | undefined {
  const hex = /^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$/.exec(ref.trim());
  if (hex) return parseInt(hex[1]! + hex[2]!, 16) >>> 0;
  return tagOfKeyword(ref.trim());
}

/** `00100010`: the form DICOM JSON uses for keys. */
export function tagHex(tag: number): string {
  return tag.toString(16).toUpperCase().padStart(8, '0');
}

/** `(0010,0010)`: the form humans read in messages. */
export function tagLabel(tag: number): string {
  const h = tagHex(tag);
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}
