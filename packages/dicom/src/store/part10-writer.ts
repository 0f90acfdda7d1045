/** Implementation Class UID and version Tessera writes into the file meta information it creates. */
export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1515.1';
export const IMPLEMENTATION_VERSION = 'TESSERA_010';

/** One explicit VR little endian element (PS3.5 7.1.2): a 4-byte length for OB, OW, OF, SQ, UT, UN. */
export function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
  const header = Buffer.alloc(long ? 12 : 8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elem, 2);
  header.write(vr, 4, 'latin1');
  if (long) header.writeUInt32LE(value.length, 8);
  else header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** A text value padded to even length (UIDs with NUL, other strings with a space). */
export function text(value: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(value.length % 2 ? value + pad : value, 'latin1');
}

/**
 * The 128-byte preamble, `DICM` and the file meta information (PS3.10 §7.1) for a
 * dataset received without one (C-STORE); the dataset bytes follow unchanged.
 */
export function part10Header(input: { sopClassUid: string; sopInstanceUid: string; transferSyntaxUid: string; sourceAe?: string }): Buffer {
  const elements = [
    element(2, 0x0001, 'OB', Buffer.from([0, 1])),
    element(2, 0x0002, 'UI', text(input.sopClassUid, '\0')),
    element(2, 0x0003, 'UI', text(input.sopInstanceUid, '\0')),
    element(2, 0x0010, 'UI', text(input.transferSyntaxUid, '\0')),
    element(2, 0x0012, 'UI', text(IMPLEMENTATION_CLASS_UID, '\0')),
    element(2, 0x0013, 'SH', text(IMPLEMENTATION_VERSION, ' ')),
  ];
  if (input.sourceAe) elements.push(element(2, 0x0016, 'AE', text(input.sourceAe.slice(0, 16), ' ')));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(2, 0x0000, 'UL', groupLength), body]);
}
