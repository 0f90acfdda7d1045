export * from './route.ts';
export * from './common.ts';
export * from './openapi.ts';
export * from './routes.ts';
export * from './platform.ts';
export * from './projects.ts';
export * from './applications.ts';
export * from './results.ts';
