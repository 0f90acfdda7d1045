import { TesseraError } from '@tessera/model';

/** How many bytes after EOI may be padding: DICOM pads fragments to even length with 0x00. */
const MAX_PADDING = 3;

/**
 * Checks that a JPEG or JPEG-LS codestream ends with its end-of-image marker (FF D9),
 * allowing a little zero padding. Entropy-coded data never contains FF D9 (a 0xFF there is
 * followed by 0x00 or a byte below 0x80), so a missing EOI means the frame was cut short.
 * The check matters: jpeg-lossless-decoder-js decodes a truncated stream into garbage
 * without a word, and CharLS takes seconds to reject some truncated streams.
 * @throws TesseraError TESSERA_INVALID_DICOM when the codestream does not end with EOI.
 */
export function checkEndOfImage(frame: Buffer, transferSyntaxName: string): void {
  let end = frame.length;
  while (end > 0 && frame.length - end < MAX_PADDING && frame[end - 1] === 0) end--;
  if (end < 2 || frame[end - 2] !== 0xff || frame[end - 1] !== 0xd9) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `the ${transferSyntaxName} frame is truncated: its ${frame.length}-byte codestream does not end with an end-of-image marker (FF D9)`,
    );
  }
}
