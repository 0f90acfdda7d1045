export * from './extension-manifest.schema.ts';
export * from './extension-loader.ts';
export * from './workflow-registry.ts';
