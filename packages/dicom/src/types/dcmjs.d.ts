// dcmjs ships no type declarations; we use its data dictionary and, in tools, its reader/writer.
declare module 'dcmjs' {
  const dcmjs: {
    data: {
      DicomMetaDictionary: {
        nameMap: Record<string, { tag: string; vr: string; vm: string; name: string }>;
        naturalizeDataset(dataset: Record<string, unknown>): Record<string, unknown>;
        denaturalizeDataset(dataset: Record<string, unknown>): Record<string, unknown>;
      };
      DicomMessage: {
        readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): { meta: Record<string, unknown>; dict: Record<string, unknown> };
      };
      DicomDict: new (meta: Record<string, unknown>) => { dict: Record<string, unknown>; write(options?: Record<string, unknown>): ArrayBuffer };
    };
  };
  export default dcmjs;
}
