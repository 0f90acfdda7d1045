#!/usr/bin/env node
// The tessera CLI. TypeScript sources run directly through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../packages/cli/src/main.ts');
await main(process.argv);
