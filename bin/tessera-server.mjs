#!/usr/bin/env node
// Starts the Tessera server (npm start). TypeScript sources run directly through tsx.
import { register as registerCjs } from 'tsx/cjs/api';
import { register } from 'tsx/esm/api';

register();
// Workflow modules of extensions that Node loads as CommonJS (no "type": "module" above them) go through require.
registerCjs();
// The web UI is built when packages/web/dist is missing or older than its sources (ADR 10);
// TESSERA_WEB_BUILD=off skips it (the server then serves whatever dist holds).
if (process.env.TESSERA_WEB_BUILD !== 'off') {
  try {
    const { ensureWebBuilt } = await import('../packages/web/build.ts');
    await ensureWebBuilt((line) => console.log(`tessera: ${line}`));
  } catch (err) {
    console.warn(`tessera: could not build the web UI (${err instanceof Error ? err.message : err}); the API works, / shows a note`);
  }
}
const { main } = await import('../packages/server/src/main.ts');
await main();
