import { inflateRawSync } from 'node:zlib';
import { TesseraError } from '@tessera/model';
import { readDataset, invalidDicom, type DicomDataset } from './dataset-reader.ts';
import { getString } from './dataset-values.ts';

/** Transfer syntaxes Tessera stores (as received, never transcoded). */
export const TRANSFER_SYNTAXES: Record<string, { name: string; explicitVr: boolean; littleEndian: boolean; deflated?: boolean; encapsulated?: boolean }> = {
  '1.2.840.10008.1.2': { name: 'Implicit VR Little Endian', explicitVr: false, littleEndian: true },
  '1.2.840.10008.1.2.1': { name: 'Explicit VR Little Endian', explicitVr: true, littleEndian: true },
  '1.2.840.10008.1.2.2': { name: 'Explicit VR Big Endian', explicitVr: true, littleEndian: false },
  '1.2.840.10008.1.2.1.99': { name: 'Deflated Explicit VR Little Endian', explicitVr: true, littleEndian: true, deflated: true },
  '1.2.840.10008.1.2.4.50': { name: 'JPEG Baseline (Process 1)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.51': { name: 'JPEG Extended (Process 2 & 4)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.57': { name: 'JPEG Lossless (Process 14)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.70': { name: 'JPEG Lossless SV1 (Process 14)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.80': { name: 'JPEG-LS Lossless', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.81': { name: 'JPEG-LS Near-Lossless', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.90': { name: 'JPEG 2000 (Lossless Only)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.91': { name: 'JPEG 2000', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.201': { name: 'High-Throughput JPEG 2000 (Lossless Only)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.202': { name: 'High-Throughput JPEG 2000 with RPCL (Lossless Only)', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.4.203': { name: 'High-Throughput JPEG 2000', explicitVr: true, littleEndian: true, encapsulated: true },
  '1.2.840.10008.1.2.5': { name: 'RLE Lossless', explicitVr: true, littleEndian: true, encapsulated: true },
};

export interface Part10 {
  transferSyntaxUid: string;
  /** File meta information (group 0002). */
  meta: DicomDataset;
  /** Where the dataset starts in the file (after the meta information). */
  datasetOffset: number;
  /** The dataset; for deflated files it is over the inflated bytes. */
  dataset: DicomDataset;
}

export interface ReadOptions {
  /** Stop before this tag, e.g. 0x7fe00010 to read only the header of an image. */
  stopAtTag?: number;
  /** Largest a deflated dataset may inflate to (default 1 GiB): a few KB can inflate to gigabytes. */
  maxInflatedBytes?: number;
}

const DEFAULT_MAX_INFLATED = 1024 * 1024 * 1024;

/**
 * Reads a DICOM Part 10 file (preamble, `DICM`, file meta information, dataset).
 * Throws TESSERA_INVALID_DICOM naming what is wrong: no `DICM` marker, missing or
 * unsupported transfer syntax, a truncated or garbled dataset.
 */
export function readPart10(file: Buffer, options: ReadOptions = {}): Part10 {
  if (file.length < 132 || file.toString('latin1', 128, 132) !== 'DICM') {
    throw invalidDicom(
      file.length < 132
        ? `not a DICOM file: ${file.length} bytes is shorter than the 128-byte preamble and the "DICM" marker of a DICOM Part 10 file`
        : 'not a DICOM Part 10 file: the "DICM" marker is missing at byte 128 (wrong preamble, or not DICOM at all)',
    );
  }
  // The meta information is explicit VR little endian whatever the transfer syntax (PS3.10 §7.1).
  const meta = readDataset(file, { littleEndian: true, explicitVr: true, offset: 132, stopAtTag: 0x00030000 });
  const groupLength = meta.elements.get(0x00020000);
  let datasetOffset = [...meta.elements.values()].reduce((end, el) => Math.max(end, el.offset + el.length), 132);
  if (groupLength && groupLength.length === 4) {
    const declared = 132 + 12 + file.readUInt32LE(groupLength.offset);
    // Some writers get the group length wrong; trust the elements when they disagree.
    if (declared === datasetOffset) datasetOffset = declared;
  }
  const transferSyntaxUid = getString(meta, 0x00020010);
  if (!transferSyntaxUid) throw invalidDicom('the file meta information has no Transfer Syntax UID (0002,0010)');
  const dataset = readDatasetOf(file.subarray(datasetOffset), transferSyntaxUid, options);
  return { transferSyntaxUid, meta, datasetOffset, dataset };
}

/** Reads a dataset (no meta information) in the given transfer syntax, e.g. one received over DIMSE. */
export function readDatasetOf(bytes: Buffer, transferSyntaxUid: string, options: ReadOptions = {}): DicomDataset {
  const ts = TRANSFER_SYNTAXES[transferSyntaxUid];
  if (!ts) {
    throw invalidDicom(`transfer syntax ${transferSyntaxUid} is not one Tessera stores; supported: ${Object.values(TRANSFER_SYNTAXES).map((t) => t.name).join(', ')}`);
  }
  let body = bytes;
  if (ts.deflated) {
    try {
      body = inflateRawSync(bytes, { maxOutputLength: options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `the deflated dataset inflates to more than ${options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED} bytes, the largest instance accepted`);
      }
      throw invalidDicom(`the deflated dataset cannot be inflated: ${(err as Error).message}`);
    }
  }
  return readDataset(body, { littleEndian: ts.littleEndian, explicitVr: ts.explicitVr, stopAtTag: options.stopAtTag });
}
