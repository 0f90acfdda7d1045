export * from './main.ts';
export * from './api-client.ts';
