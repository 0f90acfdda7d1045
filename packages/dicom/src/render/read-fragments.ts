import { TesseraError } from '@tessera/model';

/** One fragment item of encapsulated pixel data. */
export interface Fragment {
  /** Offset of the item tag from the first fragment's item tag, as the Basic Offset Table counts. */
  offset: number;
  /** The item's value (a view of the pixel data value, not a copy). */
  data: Buffer;
}

/** The items of an encapsulated (7FE0,0010) value. */
export interface EncapsulatedItems {
  /** The Basic Offset Table: empty when its item is empty. */
  offsets: number[];
  fragments: Fragment[];
}

const ITEM = 0xe000fffe;
const SEQUENCE_DELIMITER = 0xe0ddfffe;
const HEADER = 8;

/**
 * Reads the Basic Offset Table and the fragments of encapsulated pixel data. Encapsulated
 * transfer syntaxes are all little endian, so the item headers are too.
 * @throws TesseraError TESSERA_INVALID_DICOM when an item is malformed or runs past the value.
 */
export function readFragments(value: Buffer): EncapsulatedItems {
  const items: Buffer[] = [];
  let pos = 0;
  while (pos + HEADER <= value.length) {
    const tag = value.readUInt32LE(pos);
    if (tag === SEQUENCE_DELIMITER) break;
    if (tag !== ITEM) {
      throw invalid(`expected an item tag (FFFE,E000) at byte ${pos}, found ${describeTag(tag)}`);
    }
    const length = value.readUInt32LE(pos + 4);
    if (length === 0xffffffff) throw invalid(`item at byte ${pos} has an undefined length`);
    if (pos + HEADER + length > value.length) {
      throw invalid(
        `the pixel data is truncated: item ${items.length} at byte ${pos} declares ${length} bytes but only ${value.length - pos - HEADER} remain`,
      );
    }
    items.push(value.subarray(pos + HEADER, pos + HEADER + length));
    pos += HEADER + length;
  }
  if (pos < value.length && pos + HEADER > value.length) {
    throw invalid(`the pixel data is truncated: ${value.length - pos} stray bytes after the last item`);
  }
  const [table, ...contents] = items;
  if (table === undefined) throw invalid('the encapsulated pixel data has no Basic Offset Table item');
  if (table.length % 4 !== 0) throw invalid(`the Basic Offset Table has ${table.length} bytes, not a multiple of 4`);
  const offsets: number[] = [];
  for (let i = 0; i < table.length; i += 4) offsets.push(table.readUInt32LE(i));
  const fragments: Fragment[] = [];
  let offset = 0;
  for (const data of contents) {
    fragments.push({ offset, data });
    offset += HEADER + data.length;
  }
  return { offsets, fragments };
}

function describeTag(tag: number): string {
  const group = (tag & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  const element = (tag >>> 16).toString(16).toUpperCase().padStart(4, '0');
  return `(${group},${element})`;
}

function invalid(message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_DICOM', `encapsulated pixel data: ${message}`);
}
