export type { PixelModule } from './pixel-module.ts';
export { extractFrame } from './extract-frame.ts';
export { decodeFrame, type DecodedFrame, type MonochromeFrame, type ColorFrame } from './decode-frame.ts';
export { decodeFrameToNative, nativePhotometricInterpretation } from './decode-frame-to-native.ts';
export { renderFrame, type RenderOptions } from './render-frame.ts';
export type { VoiWindow } from './window-to-grey.ts';
export { DECODABLE_TRANSFER_SYNTAXES } from './transfer-syntax.ts';
