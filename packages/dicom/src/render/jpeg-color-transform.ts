const SOS = 0xda;
const APP0 = 0xe0;
const APP14 = 0xee;

/**
 * Settles, for a 3-component DCT JPEG, whether libjpeg-turbo converts YCbCr to RGB. The
 * codestream decides when it says so: a JFIF marker (YCbCr), an Adobe marker (its
 * transform flag), or component IDs 1,2,3 (YCbCr) or 'R','G','B' (RGB) — some writers
 * label YCbCr frames RGB, and these signals get them right. Without any of these,
 * libjpeg-turbo would assume YCbCr, which is wrong for frames compressed as RGB with no
 * colour transform; there the DICOM Photometric Interpretation decides, through an Adobe
 * APP14 segment inserted after SOI. The codestream is returned unchanged when it already
 * decides or its header cannot be walked.
 */
export function withColorTransform(frame: Buffer, photometric: string): Buffer {
  let pos = 2;
  while (pos + 4 <= frame.length && frame[pos] === 0xff) {
    const marker = frame[pos + 1]!;
    if (marker === SOS) return frame;
    const end = pos + 2 + frame.readUInt16BE(pos + 2);
    if (marker === APP0 && frame.toString('latin1', pos + 4, pos + 8) === 'JFIF') return frame;
    if (marker === APP14 && frame.toString('latin1', pos + 4, pos + 9) === 'Adobe') return frame;
    if (isStartOfFrame(marker)) {
      if (frame[pos + 9] !== 3 || end > frame.length) return frame;
      const ids = [frame[pos + 10], frame[pos + 13], frame[pos + 16]].join(',');
      if (ids === '1,2,3' || ids === '82,71,66') return frame;
      const ycbcr = photometric !== 'RGB';
      return Buffer.concat([frame.subarray(0, 2), adobeSegment(ycbcr ? 1 : 0), frame.subarray(2)]);
    }
    pos = end;
  }
  return frame;
}

function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function adobeSegment(transform: number): Buffer {
  const segment = Buffer.alloc(16);
  segment.writeUInt16BE(0xff00 | APP14, 0);
  segment.writeUInt16BE(14, 2);
  segment.write('Adobe', 4, 'latin1');
  segment.writeUInt16BE(100, 9);
  segment[15] = transform;
  return segment;
}
