export * from './app-tables.ts';
export * from './app-manager.ts';
export * from './process-app-runner.ts';
export * from './subpath-proxy.ts';
export * from './docker-app-runner.ts';
