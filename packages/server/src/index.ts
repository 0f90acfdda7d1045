export * from './app.ts';
export * from './config.ts';
export * from './main.ts';
export * from './projects/project-store.ts';
