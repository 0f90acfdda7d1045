import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PYDICOM_FILES } from './dicom-env.ts';

/**
 * pydicom's CT_small.dcm (explicit VR little endian) with a private sequence nested
 * `depth` levels deep (undefined lengths), inserted in tag order before Patient's Name:
 * the "sequence bomb" a hostile sender uses. `uidSuffix` makes its UIDs its own.
 */
export function ctWithNestedSequence(depth: number, uidSuffix = ''): Buffer {
  let ct = readFileSync(join(PYDICOM_FILES, 'CT_small.dcm'));
  if (uidSuffix) {
    for (const uid of ['1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322', '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322']) {
      const replacement = Buffer.from(`${uid.slice(0, uid.length - uidSuffix.length)}${uidSuffix}`, 'latin1');
      for (let i = ct.indexOf(uid, 0, 'latin1'); i >= 0; i = ct.indexOf(uid, i + 1, 'latin1')) replacement.copy(ct, i);
    }
  }
  // (0010,0010) PN: the first element after the private group 0009.
  const at = ct.indexOf(Buffer.from([0x10, 0x00, 0x10, 0x00, 0x50, 0x4e]));
  if (at < 0) throw new Error('CT_small.dcm has no Patient Name element');
  const open = Buffer.from([0x09, 0x00, 0x10, 0x00, 0x4c, 0x4f, 0x04, 0x00, 0x54, 0x45, 0x53, 0x54]); // (0009,0010) LO "TEST": the private creator
  const sq = Buffer.from([0x09, 0x00, 0x01, 0x10, 0x53, 0x51, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]); // (0009,1001) SQ, undefined length
  const item = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
  const itemEnd = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
  const seqEnd = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const parts: Buffer[] = [open];
  for (let i = 0; i < depth; i++) parts.push(sq, item);
  for (let i = 0; i < depth; i++) parts.push(itemEnd, seqEnd);
  ct = Buffer.concat([ct.subarray(0, at), ...parts, ct.subarray(at)]);
  return ct;
}
