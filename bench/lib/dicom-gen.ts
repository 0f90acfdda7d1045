/**
 * Synthetic CT instances for the DICOM benchmarks: one template (pydicom's
 * CT_small.dcm, or a 512x512 variant of it) written over and over with new
 * UIDs, patients, dates and numbers patched into its bytes.
 *
 * Patching in place is what makes 100,000 instances take seconds rather than
 * minutes: every patched element is given a fixed length in the template, so no
 * length, offset or group length ever changes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** pydicom's test file: 128x128 16-bit CT, explicit VR little endian, 39 KB. */
export const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
export const DEFAULT_CACHE_DIR = '/var/tmp/tessera-bench-dicom';

/** `ct-small`: CT_small.dcm as is (39 KB); `ct-512`: the same image scaled to 512x512 (525 KB, a usual CT slice). */
export type CtTemplate = 'ct-small' | 'ct-512';

export interface GenerateOptions {
  /** Cache root: the instances go to `<dir>/<hash of the other options>`. */
  dir?: string;
  count: number;
  /** Default: one study per 100 instances. */
  studies?: number;
  seriesPerStudy?: number;
  template?: CtTemplate;
  /** Modality of each study, in turn; `MR` also makes the SOP class MR Image Storage. Default `['CT']`. */
  modalities?: readonly string[];
  /** Tells apart data sets that are otherwise alike (e.g. one per repetition), so that each gets its own UIDs. */
  label?: string;
}

export interface StudyInfo {
  uid: string;
  patientName: string;
  patientId: string;
  /** YYYYMMDD */
  studyDate: string;
  accessionNumber: string;
  modality: string;
  series: { uid: string; instances: number }[];
  instances: number;
}

export interface GeneratedSet {
  /** Folder of the instances: `c00000/`, `c00001/`, ... of up to 500 files each. */
  dir: string;
  count: number;
  template: CtTemplate;
  /** Bytes of one instance. */
  bytes: number;
  /** UID root of the set (2.25.<random>): every UID in it starts with it. */
  root: string;
  studies: StudyInfo[];
  /** Seconds it took to write, when it was written by this call (0 when it came from the cache). */
  generatedSeconds: number;
  /** Path of the i-th instance (0-based). */
  file(i: number): string;
  files(): string[];
  /** The chunk folders, in order. */
  chunks(): string[];
}

const GEN_VERSION = 1;
const PER_CHUNK = 500;
const TS_EXPLICIT_LE = '1.2.840.10008.1.2.1';
const SOP_CLASS: Record<string, string> = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
};
const FAMILY = ['SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS', 'MARTIN', 'LOPEZ', 'WILSON', 'ANDERSON', 'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON', 'LEE', 'PEREZ', 'WHITE', 'HARRIS'];
const GIVEN = ['JOHN', 'MARY', 'JAMES', 'ANNA', 'ROBERT', 'LINDA', 'DAVID', 'SARAH', 'PAUL', 'EMMA'];

/** Studies per patient: archives hold a few studies per patient, and a patient-level index sees that. */
const STUDIES_PER_PATIENT = 2;

/** Patient of study `s`: deterministic, so that the expected hits of a query can be computed from the manifest. */
export function patientOf(s: number): { index: number; family: string; given: string } {
  const index = Math.floor(s / STUDIES_PER_PATIENT);
  return { index, family: FAMILY[index % FAMILY.length]!, given: GIVEN[Math.floor(index / FAMILY.length) % GIVEN.length]! };
}

/** Study date of study `s`: spread over 2015-2024 in a scattered order, for date-range queries. */
export function studyDateOf(s: number): string {
  const day = new Date(Date.UTC(2015, 0, 1) + ((s * 7919) % 3650) * 86_400_000);
  return day.toISOString().slice(0, 10).replaceAll('-', '');
}

/**
 * Writes `count` CT instances with fresh UIDs, or returns the ones a previous
 * call with the same options wrote (a manifest, written last, marks a complete set).
 */
export function generateCtInstances(o: GenerateOptions): GeneratedSet {
  const count = o.count;
  const studies = o.studies ?? Math.max(1, Math.ceil(count / 100));
  const seriesPerStudy = o.seriesPerStudy ?? 1;
  const template = o.template ?? 'ct-small';
  const modalities = o.modalities ?? ['CT'];
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be a positive integer, got ${count}`);
  if (studies * seriesPerStudy > count) throw new Error(`${studies} studies of ${seriesPerStudy} series need at least ${studies * seriesPerStudy} instances, got ${count}`);
  for (const m of modalities) if (!SOP_CLASS[m]) throw new Error(`modality ${m}: only ${Object.keys(SOP_CLASS).join(', ')}`);
  const key = createHash('sha256')
    .update(JSON.stringify({ GEN_VERSION, count, studies, seriesPerStudy, template, modalities, label: o.label ?? '' }))
    .digest('hex')
    .slice(0, 16);
  const dir = join(o.dir ?? DEFAULT_CACHE_DIR, `${template}-${count}-${key}`);
  const manifestFile = join(dir, 'manifest.json');
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    return setOf(dir, m, 0);
  }
  rmSync(dir, { recursive: true, force: true });
  const t0 = performance.now();
  const manifest = write(dir, { count, studies, seriesPerStudy, template, modalities });
  // Written last, through a rename: a set interrupted half-way is never taken for a complete one.
  writeFileSync(`${manifestFile}.tmp`, JSON.stringify(manifest));
  renameSync(`${manifestFile}.tmp`, manifestFile);
  return setOf(dir, manifest, (performance.now() - t0) / 1000);
}

interface Manifest {
  count: number;
  template: CtTemplate;
  bytes: number;
  root: string;
  studies: StudyInfo[];
}

function fileOf(dir: string, i: number): string {
  return join(dir, `c${String(Math.floor(i / PER_CHUNK)).padStart(5, '0')}`, `${String(i).padStart(7, '0')}.dcm`);
}

function setOf(dir: string, m: Manifest, generatedSeconds: number): GeneratedSet {
  const file = (i: number): string => fileOf(dir, i);
  return {
    dir,
    count: m.count,
    template: m.template,
    bytes: m.bytes,
    root: m.root,
    studies: m.studies,
    generatedSeconds,
    file,
    files: () => Array.from({ length: m.count }, (_, i) => file(i)),
    chunks: () => Array.from({ length: Math.ceil(m.count / PER_CHUNK) }, (_, c) => join(dir, `c${String(c).padStart(5, '0')}`)),
  };
}

/** Fixed value lengths of the patched elements (all even, as DICOM wants). */
const SLOT = {
  uid: 48,
  patientName: 40,
  patientId: 16,
  accession: 10,
  instanceNumber: 6,
  seriesNumber: 4,
};

function write(dir: string, p: { count: number; studies: number; seriesPerStudy: number; template: CtTemplate; modalities: readonly string[] }): Manifest {
  // 30 random digits (no leading zero) under 2.25: ours to sub-divide, unique to this set.
  const digits = BigInt(`0x${randomBytes(16).toString('hex')}`).toString().replace(/^0+/, '').padEnd(30, '7').slice(0, 30);
  const root = `2.25.${digits}`;
  // Index components start with "1" and are zero-padded behind it: fixed length, yet no leading zero.
  const uid = (kind: number, n: number): string => `${root}.${kind}.1${String(n).padStart(9, '0')}`;
  const tag = digits.slice(-6);
  const t = buildTemplate(p.template);
  const buf = t.bytes;
  const studies: StudyInfo[] = [];
  let i = 0;
  for (let s = 0; s < p.studies; s++) {
    const inStudy = share(p.count, p.studies, s);
    const pat = patientOf(s);
    const modality = p.modalities[s % p.modalities.length]!;
    const info: StudyInfo = {
      uid: uid(1, s),
      patientName: `${pat.family}^${pat.given}^P${tag}${pat.index}`,
      patientId: `TB${tag}${String(pat.index).padStart(8, '0')}`,
      studyDate: studyDateOf(s),
      accessionNumber: `A${String(s + 1).padStart(9, '0')}`,
      modality,
      series: [],
      instances: inStudy,
    };
    studies.push(info);
    t.put('studyUid', info.uid);
    t.put('patientName', info.patientName);
    t.put('patientId', info.patientId);
    t.put('studyDate', info.studyDate);
    t.put('accession', info.accessionNumber);
    t.put('modality', modality);
    t.put('sopClass', SOP_CLASS[modality]!);
    t.put('metaSopClass', SOP_CLASS[modality]!);
    for (let k = 0; k < p.seriesPerStudy; k++) {
      const inSeries = share(inStudy, p.seriesPerStudy, k);
      const seriesIndex = s * p.seriesPerStudy + k;
      const series = { uid: uid(2, seriesIndex), instances: inSeries };
      info.series.push(series);
      t.put('seriesUid', series.uid);
      t.put('frameOfReference', uid(4, seriesIndex));
      t.put('seriesNumber', String(k + 1));
      for (let n = 0; n < inSeries; n++, i++) {
        const sop = uid(3, i);
        t.put('sopUid', sop);
        t.put('metaSopUid', sop);
        t.put('instanceNumber', String(n + 1));
        if (i % PER_CHUNK === 0) mkdirSync(join(dir, `c${String(i / PER_CHUNK).padStart(5, '0')}`), { recursive: true });
        // One buffer patched and written synchronously: no copy per instance.
        writeFileSync(fileOf(dir, i), buf);
      }
    }
  }
  return { count: p.count, template: p.template, bytes: buf.length, root, studies };
}

/** Size of part `k` of `total` split into `parts` near-equal parts. */
function share(total: number, parts: number, k: number): number {
  return Math.floor(total / parts) + (k < total % parts ? 1 : 0);
}

// ---------------------------------------------------------------------------
// Part 10 (explicit VR little endian only): just enough to rebuild the template.

interface Element {
  tag: number;
  vr: string;
  value: Buffer;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function parseElements(b: Buffer, start: number, end: number): Element[] {
  const out: Element[] = [];
  let p = start;
  while (p < end) {
    const tag = ((b.readUInt16LE(p) << 16) | b.readUInt16LE(p + 2)) >>> 0;
    const vr = b.toString('latin1', p + 4, p + 6);
    let len: number;
    let at: number;
    if (LONG_VRS.has(vr)) {
      len = b.readUInt32LE(p + 8);
      at = p + 12;
    } else {
      len = b.readUInt16LE(p + 6);
      at = p + 8;
    }
    // Undefined lengths would need a walk through items; the templates have none.
    if (len === 0xffffffff) throw new Error(`template: undefined length at (${hex(tag)}) is not supported`);
    out.push({ tag, vr, value: b.subarray(at, at + len) });
    p = at + len;
  }
  return out;
}

function encode(e: Element): Buffer {
  const long = LONG_VRS.has(e.vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(e.tag >>> 16, 0);
  head.writeUInt16LE(e.tag & 0xffff, 2);
  head.write(e.vr, 4, 'latin1');
  if (long) head.writeUInt32LE(e.value.length, 8);
  else head.writeUInt16LE(e.value.length, 6);
  return Buffer.concat([head, e.value]);
}

function hex(tag: number): string {
  return `${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}`;
}

type Field =
  | 'metaSopClass'
  | 'metaSopUid'
  | 'sopClass'
  | 'sopUid'
  | 'studyDate'
  | 'accession'
  | 'modality'
  | 'patientName'
  | 'patientId'
  | 'studyUid'
  | 'seriesUid'
  | 'seriesNumber'
  | 'instanceNumber'
  | 'frameOfReference';

/** Patched elements: tag, VR, fixed length, and the byte they are padded with (NUL for UI, space otherwise). */
const FIELDS: Record<Field, { tag: number; vr: string; len: number }> = {
  metaSopClass: { tag: 0x00020002, vr: 'UI', len: 26 },
  metaSopUid: { tag: 0x00020003, vr: 'UI', len: SLOT.uid },
  sopClass: { tag: 0x00080016, vr: 'UI', len: 26 },
  sopUid: { tag: 0x00080018, vr: 'UI', len: SLOT.uid },
  studyDate: { tag: 0x00080020, vr: 'DA', len: 8 },
  accession: { tag: 0x00080050, vr: 'SH', len: SLOT.accession },
  modality: { tag: 0x00080060, vr: 'CS', len: 2 },
  patientName: { tag: 0x00100010, vr: 'PN', len: SLOT.patientName },
  patientId: { tag: 0x00100020, vr: 'LO', len: SLOT.patientId },
  studyUid: { tag: 0x0020000d, vr: 'UI', len: SLOT.uid },
  seriesUid: { tag: 0x0020000e, vr: 'UI', len: SLOT.uid },
  seriesNumber: { tag: 0x00200011, vr: 'IS', len: SLOT.seriesNumber },
  instanceNumber: { tag: 0x00200013, vr: 'IS', len: SLOT.instanceNumber },
  frameOfReference: { tag: 0x00200052, vr: 'UI', len: SLOT.uid },
};

interface Template {
  bytes: Buffer;
  /** Writes a value into its slot, padded to the slot's length; throws if it does not fit. */
  put(field: Field, value: string): void;
}

function buildTemplate(kind: CtTemplate): Template {
  const src = readFileSync(CT_SMALL);
  if (src.toString('latin1', 128, 132) !== 'DICM') throw new Error(`${CT_SMALL} is not a Part 10 file`);
  const metaLen = src.readUInt32LE(140);
  const metaEnd = 144 + metaLen;
  const meta = parseElements(src, 132, metaEnd).filter((e) => e.tag !== 0x00020000);
  const ts = meta.find((e) => e.tag === 0x00020010)?.value.toString('latin1').replace(/\0+$/, '');
  if (ts !== TS_EXPLICIT_LE) throw new Error(`template transfer syntax ${ts}: only explicit VR little endian is supported`);
  // The trailing padding element is GE's junk, nothing a server should have to keep.
  let data = parseElements(src, metaEnd, src.length).filter((e) => e.tag !== 0xfffcfffc);
  if (kind === 'ct-512') data = scaleTo512(data);
  const slot = (e: Element): Element => {
    const f = Object.values(FIELDS).find((x) => x.tag === e.tag);
    return f ? { ...e, value: Buffer.alloc(f.len, f.vr === 'UI' ? 0 : 0x20) } : e;
  };
  const metaEls = meta.map(slot);
  const dataEls = data.map(slot);
  for (const f of Object.values(FIELDS)) {
    if (![...metaEls, ...dataEls].some((e) => e.tag === f.tag)) throw new Error(`template lacks (${hex(f.tag)})`);
  }
  const metaBody = Buffer.concat(metaEls.map(encode));
  const groupLen = Buffer.alloc(4);
  groupLen.writeUInt32LE(metaBody.length);
  const parts: Buffer[] = [Buffer.alloc(128), Buffer.from('DICM', 'latin1'), encode({ tag: 0x00020000, vr: 'UL', value: groupLen }), metaBody];
  const offsets = new Map<number, number>();
  let at = 132 + 12 + metaBody.length;
  let metaAt = 132 + 12;
  for (const e of metaEls) {
    offsets.set(e.tag, metaAt + (LONG_VRS.has(e.vr) ? 12 : 8));
    metaAt += (LONG_VRS.has(e.vr) ? 12 : 8) + e.value.length;
  }
  for (const e of dataEls) {
    const enc = encode(e);
    offsets.set(e.tag, at + (LONG_VRS.has(e.vr) ? 12 : 8));
    parts.push(enc);
    at += enc.length;
  }
  const bytes = Buffer.concat(parts);
  return {
    bytes,
    put(field, value) {
      const f = FIELDS[field];
      if (value.length > f.len) throw new Error(`${field} "${value}" is longer than its ${f.len}-byte slot`);
      const off = offsets.get(f.tag)!;
      bytes.fill(f.vr === 'UI' ? 0 : 0x20, off, off + f.len);
      bytes.write(value, off, 'latin1');
    },
  };
}

/** 512x512 by repeating each pixel 4x4: the size of a usual CT slice, with the same values. */
function scaleTo512(data: Element[]): Element[] {
  const get = (tag: number): Element => {
    const e = data.find((x) => x.tag === tag);
    if (!e) throw new Error(`template lacks (${hex(tag)})`);
    return e;
  };
  const rows = get(0x00280010).value.readUInt16LE(0);
  const cols = get(0x00280011).value.readUInt16LE(0);
  const src = get(0x7fe00010).value;
  const f = 512 / cols;
  if (rows !== 128 || cols !== 128 || get(0x00280100).value.readUInt16LE(0) !== 16) throw new Error('ct-512 expects a 128x128 16-bit template');
  const px = Buffer.alloc(512 * 512 * 2);
  for (let y = 0; y < 512; y++) {
    for (let x = 0; x < 512; x++) px.writeUInt16LE(src.readUInt16LE((Math.floor(y / f) * cols + Math.floor(x / f)) * 2), (y * 512 + x) * 2);
  }
  const us = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  const spacing = Number(get(0x00280030).value.toString('latin1').split('\\')[0]) / f;
  const ds = `${spacing.toFixed(6)}\\${spacing.toFixed(6)}`;
  return data.map((e) => {
    if (e.tag === 0x00280010 || e.tag === 0x00280011) return { ...e, value: us(512) };
    if (e.tag === 0x00280030) return { ...e, value: Buffer.from(ds.length % 2 ? `${ds} ` : ds, 'latin1') };
    if (e.tag === 0x7fe00010) return { ...e, value: px };
    return e;
  });
}
