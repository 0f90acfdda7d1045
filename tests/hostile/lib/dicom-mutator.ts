import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layoutOf, TS, type ElementAt, type FileLayout } from './dicom-layout.ts';
import { Prng } from './prng.ts';

/** Debian's python3-pydicom test files: 68 real files of every common kind and transfer syntax. */
export const PYDICOM_CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export interface CorpusFile {
  name: string;
  bytes: Buffer;
  layout: FileLayout;
  sopClassUid: string;
  sopInstanceUid: string;
}

/** One hostile input: the same mutation as a Part 10 file (STOW-RS, upload) and as a C-STORE. */
export interface HostileInput {
  id: number;
  source: string;
  /** What was done to it, e.g. `length (0028,0010)=4294967280`. */
  mutation: string;
  file: Buffer;
  /** What a C-STORE sends: the dataset without the meta header. */
  dataset: Buffer;
  /** The transfer syntax a C-STORE proposes for it. */
  transferSyntax: string;
  sopClassUid: string;
  sopInstanceUid: string;
}

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

export function loadCorpus(dir = PYDICOM_CORPUS): CorpusFile[] {
  const files: CorpusFile[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.dcm')).sort()) {
    const bytes = readFileSync(join(dir, name));
    const layout = layoutOf(bytes);
    const ds = bytes.subarray(layout.datasetStart);
    const fromDataset = (element: number): string | undefined => {
      const e = layout.elements.find((x) => x.group === 0x0008 && x.element === element);
      return e ? ds.toString('latin1', e.valueOffset, e.valueOffset + e.length).replace(/[\0 ]+$/, '') : undefined;
    };
    const sopInstanceUid = layout.sopInstanceUid ?? fromDataset(0x0018);
    // A file without a SOP instance UID anywhere cannot be given new UIDs: it is not a useful seed.
    if (!sopInstanceUid || sopInstanceUid.length < 10) continue;
    files.push({ name, bytes, layout, sopClassUid: layout.sopClassUid ?? fromDataset(0x0016) ?? SECONDARY_CAPTURE, sopInstanceUid });
  }
  return files;
}

/** A valid UID of exactly `old`'s length that encodes `n`: the input's own SOP Instance UID. */
export function freshUid(old: string, n: number): string {
  const digits = `9${n}`;
  // Replace everything after a dot far enough from the end, so that no component gets a leading zero.
  for (let dot = old.lastIndexOf('.'); dot > 0; dot = old.lastIndexOf('.', dot - 1)) {
    const room = old.length - dot - 1;
    if (room >= digits.length) return `${old.slice(0, dot + 1)}${digits.padEnd(room, '7')}`;
  }
  throw new Error(`UID ${old} is too short to carry ${n}`);
}

function replaceAll(buf: Buffer, from: string, to: string): void {
  const needle = Buffer.from(from, 'latin1');
  const value = Buffer.from(to, 'latin1');
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) value.copy(buf, i);
}

interface Mutated {
  mutation: string;
  file: Buffer;
  dataset: Buffer;
  transferSyntax: string;
}

type Mutator = (src: CorpusFile, file: Buffer, prng: Prng) => Mutated | undefined;

const datasetOf = (src: CorpusFile, file: Buffer): Buffer => file.subarray(src.layout.datasetStart);
const withDataset = (src: CorpusFile, file: Buffer, dataset: Buffer): Buffer => Buffer.concat([file.subarray(0, src.layout.datasetStart), dataset]);
const tagName = (e: ElementAt): string => `(${e.group.toString(16).padStart(4, '0')},${e.element.toString(16).padStart(4, '0')})`;
const big = (src: CorpusFile): boolean => src.layout.transferSyntax === TS.explicitBE;

function writeLength(ds: Buffer, e: ElementAt, value: number, bigEndian: boolean): void {
  if (e.lengthSize === 2) {
    if (bigEndian) ds.writeUInt16BE(value & 0xffff, e.lengthOffset);
    else ds.writeUInt16LE(value & 0xffff, e.lengthOffset);
  } else if (bigEndian) ds.writeUInt32BE(value >>> 0, e.lengthOffset);
  else ds.writeUInt32LE(value >>> 0, e.lengthOffset);
}

const flip: Mutator = (src, file, prng) => {
  const n = prng.int(1, 8);
  const from = prng.chance(0.2) ? 0 : src.layout.datasetStart;
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const pos = prng.int(from, file.length - 1);
    file[pos] = file[pos]! ^ (1 << prng.int(0, 7));
    at.push(pos);
  }
  return { mutation: `flip ${n} bits at ${at.join(',')}`, file, dataset: datasetOf(src, file), transferSyntax: src.layout.transferSyntax };
};

const truncate: Mutator = (src, file, prng) => {
  const cut = prng.chance(0.1) ? prng.int(0, src.layout.datasetStart) : prng.int(src.layout.datasetStart, file.length - 1);
  const cutFile = file.subarray(0, cut);
  const dataset = cut > src.layout.datasetStart ? cutFile.subarray(src.layout.datasetStart) : Buffer.alloc(0);
  return { mutation: `truncate at ${cut} of ${file.length}`, file: cutFile, dataset, transferSyntax: src.layout.transferSyntax };
};

const bogusLength: Mutator = (src, file, prng) => {
  const e = src.layout.elements.length ? prng.pick(src.layout.elements) : undefined;
  if (!e) return undefined;
  const ds = datasetOf(src, file);
  const remaining = ds.length - e.valueOffset;
  const value = prng.pick([0, 1, e.length + 1, e.length * 2 + 3, remaining + 1, 0xffffffff, 0xfffffff0, 0x7fffffff, prng.int(0, 0xffffffff)]);
  writeLength(ds, e, value, big(src));
  return { mutation: `length ${tagName(e)}=${value}`, file, dataset: ds, transferSyntax: src.layout.transferSyntax };
};

const bogusVr: Mutator = (src, file, prng) => {
  const explicit = src.layout.elements.filter((e) => e.vrOffset !== undefined);
  if (explicit.length === 0) return undefined;
  const e = prng.pick(explicit);
  const vr = prng.pick(['SQ', 'UN', 'OB', 'OW', 'FD', 'AT', 'UT', 'US', 'XX', '\0\0', 'ox']);
  const ds = datasetOf(src, file);
  ds.write(vr, e.vrOffset!, 'latin1');
  return { mutation: `vr ${tagName(e)}=${JSON.stringify(vr)}`, file, dataset: ds, transferSyntax: src.layout.transferSyntax };
};

/** Image pixel module attributes (group 0028) set to values a renderer must not believe. */
const pixelLie: Mutator = (src, file, prng) => {
  const candidates = src.layout.elements.filter((e) => e.group === 0x0028 && [0x0002, 0x0006, 0x0008, 0x0010, 0x0011, 0x0100, 0x0101, 0x0102, 0x0103].includes(e.element));
  if (candidates.length === 0) return undefined;
  const e = prng.pick(candidates);
  const ds = datasetOf(src, file);
  let value: string;
  if (e.element === 0x0008) {
    // Number of Frames is an IS: digits in the space the value has.
    value = prng.pick(['999999999999', '0', '-1', '2147483648', 'x']).slice(0, e.length).padEnd(e.length, ' ');
    ds.write(value, e.valueOffset, 'latin1');
  } else if (e.length === 2) {
    const n = prng.pick([0, 1, 3, 7, 33, 64, 255, 0x7fff, 0xffff]);
    if (big(src)) ds.writeUInt16BE(n, e.valueOffset);
    else ds.writeUInt16LE(n, e.valueOffset);
    value = String(n);
  } else return undefined;
  return { mutation: `pixel ${tagName(e)}=${value.trim()}`, file, dataset: ds, transferSyntax: src.layout.transferSyntax };
};

/** A private sequence nested `depth` deep (or `depth` empty items side by side) before the first element past group 0009. */
const sequenceBomb: Mutator = (src, file, prng) => {
  if (src.layout.transferSyntax !== TS.explicitLE && src.layout.transferSyntax !== TS.implicitLE) return undefined;
  const explicit = src.layout.transferSyntax === TS.explicitLE;
  const before = src.layout.elements.find((e) => e.group > 0x0009 && e.group !== 0xfffe);
  if (!before) return undefined;
  const depth = prng.pick([65, 100, 300, 2_000, 20_000]);
  const wide = prng.chance(0.25);
  const creator = explicit ? Buffer.from([0x09, 0, 0x10, 0, 0x4c, 0x4f, 4, 0, 0x54, 0x45, 0x53, 0x54]) : Buffer.from([0x09, 0, 0x10, 0, 4, 0, 0, 0, 0x54, 0x45, 0x53, 0x54]);
  const sq = explicit ? Buffer.from([0x09, 0, 0x01, 0x10, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]) : Buffer.from([0x09, 0, 0x01, 0x10, 0xff, 0xff, 0xff, 0xff]);
  const item = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
  const itemEnd = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
  const seqEnd = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const parts: Buffer[] = [creator];
  if (wide) {
    parts.push(sq);
    for (let i = 0; i < depth; i++) parts.push(item, itemEnd);
    parts.push(seqEnd);
  } else {
    for (let i = 0; i < depth; i++) parts.push(sq, item);
    for (let i = 0; i < depth; i++) parts.push(itemEnd, seqEnd);
  }
  const ds = datasetOf(src, file);
  const dataset = Buffer.concat([ds.subarray(0, before.offset), ...parts, ds.subarray(before.offset)]);
  return { mutation: `sequence bomb ${wide ? 'wide' : 'deep'} ${depth}`, file: withDataset(src, file, dataset), dataset, transferSyntax: src.layout.transferSyntax };
};

/** The meta header's elements, re-encoded (explicit VR little endian) after `edit`. */
function rebuildMeta(file: Buffer, src: CorpusFile, edit: (elements: Map<number, Buffer>) => void, groupLength?: number): Buffer {
  const elements = new Map<number, Buffer>();
  const vrs = new Map<number, string>();
  for (let pos = 132; pos < src.layout.datasetStart; ) {
    const element = file.readUInt16LE(pos + 2);
    const vr = file.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'UN', 'UT', 'SQ', 'OW', 'UC', 'UR'].includes(vr);
    const length = long ? file.readUInt32LE(pos + 8) : file.readUInt16LE(pos + 6);
    const value = pos + (long ? 12 : 8);
    if (element !== 0) elements.set(element, file.subarray(value, value + length));
    vrs.set(element, vr);
    pos = value + length;
  }
  edit(elements);
  const encoded = [...elements.entries()]
    .sort(([a], [b]) => a - b)
    .map(([element, value]) => {
      const vr = vrs.get(element) ?? 'UI';
      const long = ['OB', 'UN', 'UT', 'SQ', 'OW', 'UC', 'UR'].includes(vr);
      const head = Buffer.alloc(long ? 12 : 8);
      head.writeUInt16LE(2, 0);
      head.writeUInt16LE(element, 2);
      head.write(vr, 4, 'latin1');
      if (long) head.writeUInt32LE(value.length, 8);
      else head.writeUInt16LE(value.length, 6);
      return Buffer.concat([head, value]);
    });
  const body = Buffer.concat(encoded);
  const gl = Buffer.from([2, 0, 0, 0, 0x55, 0x4c, 4, 0, 0, 0, 0, 0]);
  gl.writeUInt32LE(groupLength ?? body.length, 8);
  return Buffer.concat([file.subarray(0, 132), gl, body, datasetOf(src, file)]);
}

const uidValue = (uid: string): Buffer => Buffer.from(uid.length % 2 ? `${uid}\0` : uid, 'latin1');

const badTransferSyntax: Mutator = (src, file, prng) => {
  if (src.layout.datasetStart === 0) return undefined;
  const ts = prng.pick(['', '1.2.3.4', 'not a uid', '1.2.840.10008.1.2.4.50', TS.explicitBE, TS.deflated, TS.implicitLE, '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.80']);
  if (ts === src.layout.transferSyntax) return undefined;
  const out = rebuildMeta(file, src, (m) => m.set(0x0010, uidValue(ts)));
  return { mutation: `transfer syntax ${JSON.stringify(ts)} for ${src.layout.transferSyntax}`, file: out, dataset: datasetOf(src, file), transferSyntax: ts || TS.explicitLE };
};

const brokenMeta: Mutator = (src, file, prng) => {
  if (src.layout.datasetStart === 0) return undefined;
  const kind = prng.pick(['no DICM', 'group length', 'no SOP instance', 'meta only', 'no meta', 'meta element length']);
  let out: Buffer;
  if (kind === 'no DICM') {
    out = file;
    out.write('DIXM', 128, 'latin1');
  } else if (kind === 'group length') out = rebuildMeta(file, src, () => undefined, prng.pick([0, 3, 0xffffffff, 10_000_000]));
  else if (kind === 'no SOP instance') out = rebuildMeta(file, src, (m) => m.delete(0x0003));
  else if (kind === 'meta only') out = file.subarray(0, src.layout.datasetStart);
  else if (kind === 'no meta') out = datasetOf(src, file);
  else {
    out = file;
    out.writeUInt16LE(0xfff0, 132 + 12 + 6); // the length of the first element after the group length
  }
  return { mutation: `meta: ${kind}`, file: out, dataset: datasetOf(src, file), transferSyntax: src.layout.transferSyntax };
};

const badUid: Mutator = (src, file, prng) => {
  const uid = src.sopInstanceUid;
  const bad = prng.pick([`0${uid.slice(1)}`, `${uid.slice(0, -2)}.0`, `${uid.slice(0, 3)}..${uid.slice(5)}`, 'X'.repeat(uid.length), `${uid.slice(0, -1)}\\`]);
  replaceAll(file, uid, bad.slice(0, uid.length).padEnd(uid.length, '1'));
  return { mutation: `SOP instance UID ${JSON.stringify(bad)}`, file, dataset: datasetOf(src, file), transferSyntax: src.layout.transferSyntax };
};

const MUTATORS: Array<[string, Mutator, number]> = [
  ['flip', flip, 5],
  ['truncate', truncate, 3],
  ['length', bogusLength, 4],
  ['vr', bogusVr, 2],
  ['pixel', pixelLie, 3],
  ['bomb', sequenceBomb, 1],
  ['ts', badTransferSyntax, 1],
  ['meta', brokenMeta, 1],
  ['uid', badUid, 1],
];
const TOTAL_WEIGHT = MUTATORS.reduce((sum, [, , w]) => sum + w, 0);

/**
 * The `id`th hostile input of a seeded campaign: a corpus file with its own new
 * SOP Instance UID (so that inputs are not duplicates of each other) and one mutation.
 */
export function hostileInput(corpus: CorpusFile[], prng: Prng, id: number, uidBase: number): HostileInput {
  for (;;) {
    const src = prng.pick(corpus);
    let roll = prng.next() * TOTAL_WEIGHT;
    const [, mutate] = MUTATORS.find(([, , w]) => (roll -= w) < 0) ?? MUTATORS[0]!;
    const sopInstanceUid = freshUid(src.sopInstanceUid, uidBase + id);
    const file = Buffer.from(src.bytes);
    replaceAll(file, src.sopInstanceUid, sopInstanceUid);
    const m = mutate({ ...src, sopInstanceUid }, file, prng);
    if (!m) continue;
    return { id, source: src.name, sopClassUid: src.sopClassUid, sopInstanceUid, ...m };
  }
}

/** Input `id` of the campaign with `seed`, made again (to reproduce a finding): the inputs before it are made and dropped. */
export function inputAt(corpus: CorpusFile[], seed: number, id: number, prng = new Prng(seed)): HostileInput {
  for (let n = 0; n < id; n++) hostileInput(corpus, prng, n, seed * 1_000_000);
  return hostileInput(corpus, prng, id, seed * 1_000_000);
}
