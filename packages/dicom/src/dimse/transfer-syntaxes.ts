/** Verification SOP Class (C-ECHO). */
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/** Implicit VR Little Endian: the transfer syntax of every DIMSE command set. */
export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';

/**
 * Transfer syntaxes we accept in a presentation context, uid -> name.
 * Datasets are stored as received, so this is the list of encodings the rest
 * of the platform must be able to read; it is exported for docs and the store.
 */
export const SUPPORTED_TRANSFER_SYNTAXES: Record<string, string> = Object.freeze({
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
});

/** Prefix of (almost) every Storage SOP Class: CT, MR, US, SC, RT, SR, PR, KO, ... */
const STORAGE_PREFIX = '1.2.840.10008.5.1.4.1.1.';

/** Standard storage SOP classes that live outside {@link STORAGE_PREFIX}. */
const OTHER_STORAGE_CLASSES = new Set([
  '1.2.840.10008.5.1.4.34.7', // RT Beams Delivery Instruction Storage
  '1.2.840.10008.5.1.4.34.10', // RT Brachy Application Setup Delivery Instruction Storage
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol Storage
  '1.2.840.10008.5.1.4.39.1', // Color Palette Storage
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template Storage
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template Storage
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group Storage
]);

/** True for a standard Storage SOP Class UID (private storage classes are not accepted). */
export function isStorageSopClass(uid: string): boolean {
  if (OTHER_STORAGE_CLASSES.has(uid)) return true;
  return uid.length > STORAGE_PREFIX.length && uid.startsWith(STORAGE_PREFIX) && /^[0-9.]+$/.test(uid);
}

/** True for an abstract syntax we accept a presentation context for. */
export function isAcceptedAbstractSyntax(uid: string): boolean {
  return uid === VERIFICATION_SOP_CLASS || isStorageSopClass(uid);
}

/** The first of the proposed transfer syntaxes we support, in the proposer's order, or undefined. */
export function pickTransferSyntax(proposed: readonly string[]): string | undefined {
  return proposed.find((uid) => Object.hasOwn(SUPPORTED_TRANSFER_SYNTAXES, uid));
}
