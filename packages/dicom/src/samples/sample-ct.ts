import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { element, part10Header, text } from '../store/part10-writer.ts';

/** Sample data bundled with the platform, named by `ext test` cases and the guides (`"data": "sample:ct"`). */
export const SAMPLE_DATA = {
  ct: 'A synthetic CT phantom: 16 axial 64x64 slices; air, a water cylinder, and a bright sphere (300 HU) in the middle.',
} as const;
export type SampleName = keyof typeof SAMPLE_DATA;

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

/** A new DICOM UID (2.25 + a UUID as a decimal number, PS3.5 B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

const el = element;
const str = (v: string): Buffer => text(v, ' ');
const uid = (v: string): Buffer => text(v, '\0');
const us = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

/**
 * Writes the sample CT series into `dir` (one file per slice, explicit VR little
 * endian). Every call makes new UIDs, so the series can be imported again and again.
 */
export async function writeSampleCt(dir: string, o: { slices?: number; size?: number; patientId?: string } = {}): Promise<{ files: string[]; study: string; series: string }> {
  const slices = o.slices ?? 16;
  const size = o.size ?? 64;
  const study = newUid();
  const series = newUid();
  const frame = newUid();
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (let z = 0; z < slices; z++) {
    const sop = newUid();
    const pixels = Buffer.alloc(size * size * 2);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = (x - size / 2) / size;
        const dy = (y - size / 2) / size;
        const dz = (z - slices / 2) / Math.max(slices, size);
        let hu = -1000;
        if (dx * dx + dy * dy < 0.4 * 0.4) hu = ((x * 7 + y * 13 + z * 3) % 21) - 10; // water with a little noise
        if (dx * dx + dy * dy + dz * dz < 0.15 * 0.15) hu = 300;
        pixels.writeUInt16LE(hu + 1024, (y * size + x) * 2);
      }
    }
    const dataset = Buffer.concat([
      el(0x0008, 0x0008, 'CS', str('ORIGINAL\\PRIMARY\\AXIAL')),
      el(0x0008, 0x0016, 'UI', uid(CT_IMAGE_STORAGE)),
      el(0x0008, 0x0018, 'UI', uid(sop)),
      el(0x0008, 0x0020, 'DA', str('20260101')),
      el(0x0008, 0x0030, 'TM', str('120000')),
      el(0x0008, 0x0060, 'CS', str('CT')),
      el(0x0008, 0x0070, 'LO', str('Tessera sample data')),
      el(0x0008, 0x1030, 'LO', str('Sample phantom')),
      el(0x0008, 0x103e, 'LO', str('Sample CT phantom')),
      el(0x0010, 0x0010, 'PN', str('Sample^Phantom')),
      el(0x0010, 0x0020, 'LO', str(o.patientId ?? 'SAMPLE-1')),
      el(0x0018, 0x0015, 'CS', str('CHEST')),
      el(0x0018, 0x0050, 'DS', str('2')),
      el(0x0020, 0x000d, 'UI', uid(study)),
      el(0x0020, 0x000e, 'UI', uid(series)),
      el(0x0020, 0x0010, 'SH', str('1')),
      el(0x0020, 0x0011, 'IS', str('1')),
      el(0x0020, 0x0013, 'IS', str(String(z + 1))),
      el(0x0020, 0x0032, 'DS', str(`-64\\-64\\${z * 2}`)),
      el(0x0020, 0x0037, 'DS', str('1\\0\\0\\0\\1\\0')),
      el(0x0020, 0x0052, 'UI', uid(frame)),
      el(0x0020, 0x1041, 'DS', str(String(z * 2))),
      el(0x0028, 0x0002, 'US', us(1)),
      el(0x0028, 0x0004, 'CS', str('MONOCHROME2')),
      el(0x0028, 0x0010, 'US', us(size)),
      el(0x0028, 0x0011, 'US', us(size)),
      el(0x0028, 0x0030, 'DS', str('2\\2')),
      el(0x0028, 0x0100, 'US', us(16)),
      el(0x0028, 0x0101, 'US', us(16)),
      el(0x0028, 0x0102, 'US', us(15)),
      el(0x0028, 0x0103, 'US', us(0)),
      el(0x0028, 0x1050, 'DS', str('40')),
      el(0x0028, 0x1051, 'DS', str('400')),
      el(0x0028, 0x1052, 'DS', str('-1024')),
      el(0x0028, 0x1053, 'DS', str('1')),
      el(0x7fe0, 0x0010, 'OW', pixels),
    ]);
    const file = join(dir, `ct-${String(z + 1).padStart(3, '0')}.dcm`);
    await writeFile(file, Buffer.concat([part10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: sop, transferSyntaxUid: EXPLICIT_LE }), dataset]));
    files.push(file);
  }
  return { files, study, series };
}

/** Writes a named sample into `dir`. */
export async function writeSample(name: string, dir: string): Promise<{ files: string[]; series: string[] }> {
  if (name === 'ct') {
    const s = await writeSampleCt(dir);
    return { files: s.files, series: [s.series] };
  }
  throw new Error(`there is no sample "${name}"; samples: ${Object.keys(SAMPLE_DATA).map((k) => `sample:${k}`).join(', ')}`);
}
