export * from './app-tables.ts';
export * from './app-manager.ts';
export * from './runners/app-runner.ts';
export * from './runners/free-port.ts';
export * from './runners/process/process-app-runner.ts';
export * from './runners/docker/docker-app-runner.ts';
export * from './proxy/subpath-proxy.ts';
