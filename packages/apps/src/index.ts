export * from './app-tables.ts';
export * from './app-manager.ts';
export * from './runners/process/process-app-runner.ts';
export * from './proxy/subpath-proxy.ts';
export * from './runners/docker/docker-app-runner.ts';
