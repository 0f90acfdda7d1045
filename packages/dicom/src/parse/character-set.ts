/**
 * Decoding of DICOM text values by Specific Character Set (0008,0005), PS3.5 §6.1.
 * Single-byte and multi-byte sets map to WHATWG TextDecoder labels (Node has full
 * ICU); ISO 2022 code extensions switch decoders at escape sequences.
 */

// Defined terms without code extensions.
const PLAIN: Record<string, string> = {
  '': 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

// Defined terms with code extensions: the decoder of their G1 (high) half.
const EXTENDED: Record<string, string> = {
  'ISO 2022 IR 6': 'latin1',
  'ISO 2022 IR 100': 'latin1',
  'ISO 2022 IR 101': 'iso-8859-2',
  'ISO 2022 IR 109': 'iso-8859-3',
  'ISO 2022 IR 110': 'iso-8859-4',
  'ISO 2022 IR 144': 'iso-8859-5',
  'ISO 2022 IR 127': 'iso-8859-6',
  'ISO 2022 IR 126': 'iso-8859-7',
  'ISO 2022 IR 138': 'iso-8859-8',
  'ISO 2022 IR 148': 'iso-8859-9',
  'ISO 2022 IR 203': 'iso-8859-15',
  'ISO 2022 IR 13': 'shift_jis',
  'ISO 2022 IR 166': 'windows-874',
  'ISO 2022 IR 87': 'iso-2022-jp',
  'ISO 2022 IR 159': 'iso-2022-jp',
  'ISO 2022 IR 149': 'euc-kr',
  'ISO 2022 IR 58': 'gbk',
};

// Escape sequences (after ESC) and the decoder of the bytes that follow them.
const ESCAPES: [string, string][] = [
  ['(B', 'latin1'],
  ['(J', 'latin1'],
  [')I', 'shift_jis'],
  ['$B', 'iso-2022-jp'],
  ['$@', 'iso-2022-jp'],
  ['$(D', 'iso-2022-jp'],
  ['$)C', 'euc-kr'],
  ['$)A', 'gbk'],
  ['-A', 'latin1'],
  ['-B', 'iso-8859-2'],
  ['-C', 'iso-8859-3'],
  ['-D', 'iso-8859-4'],
  ['-L', 'iso-8859-5'],
  ['-G', 'iso-8859-6'],
  ['-F', 'iso-8859-7'],
  ['-H', 'iso-8859-8'],
  ['-M', 'iso-8859-9'],
  ['-b', 'iso-8859-15'],
  ['-T', 'windows-874'],
];

const decoders = new Map<string, TextDecoder>();
function decoder(label: string): TextDecoder {
  let d = decoders.get(label);
  if (!d) {
    d = new TextDecoder(label);
    decoders.set(label, d);
  }
  return d;
}

/** How the text of one dataset is decoded. */
export interface CharacterSet {
  /** The (0008,0005) values as found, for messages. */
  terms: string[];
  decode(bytes: Buffer): string;
}

const LATIN1: CharacterSet = { terms: [], decode: (b) => b.toString('latin1', 0, b.length) };
const ESC = 0x1b;

/** The decoder for a Specific Character Set value (backslash-separated terms); unknown terms fall back to Latin-1, as most readers do. */
export function characterSet(value: string | undefined): CharacterSet {
  if (!value) return LATIN1;
  const terms = value.split('\\').map((t) => t.trim());
  const first = terms[0] ?? '';
  if (terms.length === 1 && PLAIN[first] !== undefined) {
    const label = PLAIN[first]!;
    if (label === 'latin1') return { terms, decode: LATIN1.decode };
    const d = decoder(label);
    return { terms, decode: (b) => d.decode(b) };
  }
  const initial = PLAIN[first] ?? EXTENDED[first] ?? 'latin1';
  const highHalf = terms.map((t) => EXTENDED[t]).find((l) => l !== undefined);
  return { terms, decode: (b) => decodeIso2022(b, initial === 'iso-2022-jp' ? 'latin1' : initial, highHalf) };
}

function decodeIso2022(bytes: Buffer, initial: string, highHalf: string | undefined): string {
  if (!bytes.includes(ESC)) {
    // No escapes: 8-bit bytes belong to the set of the first term's G1.
    return decoder(highHalf && highHalf !== 'iso-2022-jp' && hasHighBytes(bytes) ? highHalf : initial).decode(bytes);
  }
  let out = '';
  let label = initial;
  let start = 0;
  let i = 0;
  while (i <= bytes.length) {
    if (i === bytes.length || bytes[i] === ESC) {
      out += decodeSegment(bytes.subarray(start, i), label);
      if (i === bytes.length) break;
      const esc = ESCAPES.find(([seq]) => bytes.toString('latin1', i + 1, i + 1 + seq.length) === seq);
      if (!esc) {
        start = i;
        i++;
        continue;
      }
      label = esc[1];
      i += 1 + esc[0].length;
      start = i;
      // JIS X 0208 bytes are 7-bit: iso-2022-jp decodes them only after its own escape.
      if (label === 'iso-2022-jp') start = i - 1 - esc[0].length;
      continue;
    }
    i++;
  }
  return out;
}

function decodeSegment(bytes: Buffer, label: string): string {
  if (bytes.length === 0) return '';
  return decoder(label).decode(bytes);
}

function hasHighBytes(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return true;
  return false;
}
