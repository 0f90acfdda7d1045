export * from './create-tessera.ts';
export * from './config.ts';
export * from './main.ts';
export * from './projects/project-store.ts';
