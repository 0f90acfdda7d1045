#!/usr/bin/env node
// Starts the Tessera server (npm start). TypeScript sources run directly through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../packages/server/src/main.ts');
await main();
