import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pydicomFile } from './dicom-env.ts';

const STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
const SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';

/** A UID of the same length as `like`, unique by `n` (its last digits), so values can be patched in place. */
function sameLength(like: string, prefix: string, n: number): string {
  const tail = String(n);
  const width = like.length - prefix.length - 1;
  if (tail.length >= width) throw new Error(`${n} does not fit in a UID of ${like.length} characters`);
  return `${prefix}.1${tail.padStart(width - 1, '0')}`;
}

/**
 * Writes `count` copies of pydicom's CT_small with new Study/Series/SOP Instance UIDs
 * (one study and series per `seriesKey`), patched in place so lengths stay valid.
 * Returns the file paths and their SOP Instance UIDs, in order.
 */
export async function writeSyntheticCt(dir: string, count: number, seriesKey = 1): Promise<{ files: string[]; sops: string[]; series: string; study: string }> {
  await mkdir(dir, { recursive: true });
  const template = readFileSync(pydicomFile('CT_small.dcm'));
  const study = sameLength(STUDY, `2.25.${seriesKey}1`, seriesKey);
  const series = sameLength(SERIES, `2.25.${seriesKey}2`, seriesKey);
  const files: string[] = [];
  const sops: string[] = [];
  for (let i = 0; i < count; i++) {
    const sop = sameLength(SOP, `2.25.${seriesKey}3`, i);
    let text = template.toString('latin1');
    text = text.split(STUDY).join(study).split(SERIES).join(series).split(SOP).join(sop);
    const file = join(dir, `ct-${String(i).padStart(6, '0')}.dcm`);
    await writeFile(file, Buffer.from(text, 'latin1'));
    files.push(file);
    sops.push(sop);
  }
  return { files, sops, series, study };
}
