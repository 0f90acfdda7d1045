import { createRequire } from 'node:module';

/** What the Cornerstone WebAssembly decoders report about a decoded image. */
export interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

/** The shape shared by the Cornerstone WebAssembly decoders (Emscripten embind classes). */
export interface WasmDecoder {
  /** A view of wasm memory to copy the encoded bytes into. */
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  /** A view of wasm memory, valid until the next call or `delete`. */
  getDecodedBuffer(): Uint8Array;
  /** Frees the decoder's wasm memory; embind objects are not garbage-collected. */
  delete(): void;
}

/** CharLS's decoder also says how the components were interleaved. */
export interface WasmJpegLsDecoder extends WasmDecoder {
  /** 0: one plane per component, 1: line by line, 2: sample by sample. */
  getInterleaveMode(): number;
}

/** libjpeg-turbo's encoder: fill the decoded buffer, encode, copy the encoded buffer out. */
export interface WasmJpegEncoder {
  /** A view of wasm memory sized for `info`, to copy the pixels into. */
  getDecodedBuffer(info: WasmFrameInfo): Uint8Array;
  /** 1 to 100. */
  setQuality(quality: number): void;
  /** 0 for baseline (sequential), 1 for progressive (the wrapper's default). */
  setProgressive(progressive: number): void;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
}

/** An initialised codec module and what it printed during the last call. */
export interface WasmCodec<D extends WasmDecoder> {
  createDecoder(): D;
  /**
   * Drops this module instance after a call into it failed: a WebAssembly trap (an
   * out-of-bounds access) can leave its memory corrupt, and the next request must not
   * inherit that. The next call loads a fresh instance.
   */
  discard(): void;
  /** Messages the codec printed since the last call (OpenJPEG reports errors only this way). */
  takeMessages(): string[];
  /** CharLS's text for a thrown exception pointer, when the module has it. */
  exceptionMessage(thrown: unknown): string | undefined;
}

interface EmscriptenModule {
  getExceptionMessage?: (pointer: number) => string | [string, string];
  [name: string]: unknown;
}
type EmscriptenFactory = (options: { print: (text: string) => void; printErr: (text: string) => void }) => Promise<EmscriptenModule>;

const requireFromHere = createRequire(import.meta.url);
const MAX_MESSAGES = 50;
const modules = new Map<string, Promise<LoadedCodec>>();

interface LoadedCodec extends WasmCodec<WasmDecoder> {
  module: EmscriptenModule;
}

/**
 * The codec module `id`, initialised once and cached: Emscripten modules compile their
 * wasm asynchronously, which is costly and needed only when a frame of that kind comes.
 * A failed initialisation is not cached, so a later call tries again.
 */
function loadCodec(id: string, className: string): Promise<LoadedCodec> {
  let pending = modules.get(id);
  if (pending === undefined) {
    const loading = initialise(id, className);
    pending = loading.then((codec) => {
      // Only while it is still the cached one: a fresh instance may be there already.
      codec.discard = () => {
        if (modules.get(id) === pending) modules.delete(id);
      };
      return codec;
    });
    modules.set(id, pending);
    pending.catch(() => modules.delete(id));
  }
  return pending;
}

async function initialise(id: string, className: string): Promise<LoadedCodec> {
  const factory = requireFromHere(id) as EmscriptenFactory;
  let messages: string[] = [];
  const collect = (text: string): void => {
    // Only OpenJPEG's messages are ever taken; the others' warnings must not pile up forever.
    if (messages.length >= MAX_MESSAGES) messages.shift();
    messages.push(text);
  };
  const module = await factory({ print: collect, printErr: collect });
  const Decoder = module[className] as (new () => WasmDecoder) | undefined;
  if (typeof Decoder !== 'function') throw new Error(`${id} has no ${className} class`);
  return {
    module,
    createDecoder: () => new Decoder(),
    // Set by loadCodec, which knows the cache entry this instance came from.
    discard: () => undefined,
    takeMessages: () => {
      const taken = messages;
      messages = [];
      return taken;
    },
    exceptionMessage: (thrown) => {
      if (typeof thrown !== 'number' || module.getExceptionMessage === undefined) return undefined;
      const text = module.getExceptionMessage(thrown);
      return Array.isArray(text) ? text.filter(Boolean).join(': ') : text;
    },
  };
}

/**
 * Frees an object of a codec module (a decoder or an encoder). When freeing fails, the
 * module's memory is corrupt: the module is dropped (that is the whole handling: the next
 * call loads a fresh instance), and the call's own result or error stands.
 */
export function freeWasmObject(codec: { discard(): void }, object: { delete(): void }): void {
  try {
    object.delete();
  } catch {
    codec.discard();
  }
}

/**
 * libjpeg-turbo (8-bit samples only): decodes JPEG Baseline and 8-bit JPEG Extended, and
 * encodes rendered frames. The build with the encoder is loaded, so one module serves both.
 */
export async function libjpegTurbo(): Promise<WasmCodec<WasmDecoder> & { createEncoder(): WasmJpegEncoder }> {
  const codec = await loadCodec('@cornerstonejs/codec-libjpeg-turbo-8bit/wasmjs', 'JPEGDecoder');
  const Encoder = codec.module['JPEGEncoder'] as (new () => WasmJpegEncoder) | undefined;
  if (typeof Encoder !== 'function') throw new Error('@cornerstonejs/codec-libjpeg-turbo-8bit has no JPEGEncoder class');
  return { ...codec, createEncoder: () => new Encoder() };
}

/** CharLS: JPEG-LS lossless and near-lossless. */
export async function charls(): Promise<WasmCodec<WasmJpegLsDecoder>> {
  const codec = await loadCodec('@cornerstonejs/codec-charls/decodewasmjs', 'JpegLSDecoder');
  return { ...codec, createDecoder: () => codec.createDecoder() as WasmJpegLsDecoder };
}

/** OpenJPEG: JPEG 2000 codestreams and JP2 files. */
export function openJpeg(): Promise<WasmCodec<WasmDecoder>> {
  return loadCodec('@cornerstonejs/codec-openjpeg/decodewasmjs', 'J2KDecoder');
}
