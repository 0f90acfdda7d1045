export * from './extension-manifest.schema.ts';
export * from './extension-loader.ts';
export * from './workflow-registry.ts';
export * from './sdk-resolve.ts';
export * from './package/package-format.ts';
export * from './package/package-build.ts';
export * from './package/package-read.ts';
export * from './package/docker-images.ts';
