import { readdirSync, readFileSync } from 'node:fs';
import { describe } from 'vitest';
import { requireSandbox, skipSandbox } from '../../../../engine/src/__fixtures__/sandbox-env.ts';
import { appRunnerConformance } from '../app-runner-conformance.ts';
import { ProcessAppRunner } from './process-app-runner.ts';

/** Live (not zombie) processes whose environment names the instance. */
async function leftovers(appId: string): Promise<number> {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state === 'Z' || state === 'X') continue;
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`TESSERA_APP_ID=${appId}`)) n++;
    } catch (err) {
      // A process that ended while the list was read, or another user's, is not the instance's.
      if (!['ENOENT', 'ESRCH', 'EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  return n;
}

appRunnerConformance('process', {
  create: async () => new ProcessAppRunner({ stopGraceMs: 1000 }),
  appSpec: (script) => ({ process: { command: ['sh', '-c', script] } }),
  leftovers,
  graceMs: 1000,
  runsInExtensionDir: true,
});

// The same behaviour in bubblewrap's sandbox: the launch's folders are what it sees and writes.
describe.skipIf(skipSandbox)('sandboxed', () => {
  appRunnerConformance('process in a sandbox', {
    create: async () => new ProcessAppRunner({ stopGraceMs: 1000, sandbox: requireSandbox() }),
    appSpec: (script) => ({ process: { command: ['sh', '-c', script] } }),
    leftovers,
    graceMs: 1000,
    runsInExtensionDir: true,
  });
});
