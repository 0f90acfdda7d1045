#!/usr/bin/env node
// Starts the Tessera server (npm start). TypeScript sources run directly through tsx.
import { register as registerCjs } from 'tsx/cjs/api';
import { register } from 'tsx/esm/api';

register();
// Workflow modules of extensions that Node loads as CommonJS (no "type": "module" above them) go through require.
registerCjs();
const { main } = await import('../packages/server/src/main.ts');
await main();
