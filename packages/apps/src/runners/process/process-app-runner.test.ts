import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireSandbox, skipSandbox } from '../../../../engine/src/__fixtures__/sandbox-env.ts';
import { commandLine, parentOf } from '../../../../engine/src/runners/process/proc-table.ts';
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

// Both launchers (ADR 17): the native one must build here, the Node one is its fallback.
for (const launcher of ['native', 'node'] as const) {
  appRunnerConformance(`process (${launcher} launcher)`, {
    create: async () => new ProcessAppRunner({ stopGraceMs: 1000, launcher }),
    appSpec: (script) => ({ process: { command: ['sh', '-c', script] } }),
    leftovers,
    graceMs: 1000,
    runsInExtensionDir: true,
  });
}

describe('process app runner: who starts the app', () => {
  it('a launcher process starts it, not a fork of the server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-app-launcher-'));
    const runner = new ProcessAppRunner({ stopGraceMs: 1000, launcher: 'native' });
    try {
      const handle = await runner.start({
        appId: 'a-launcher-probe',
        spec: { process: { command: ['sleep', '30'] } } as never,
        extDir: dir,
        hostPort: 1,
        env: { TESSERA_APP_ID: 'a-launcher-probe' },
        logFile: join(dir, 'app.log'),
        instanceDir: dir,
      });
      const parent = parentOf(Number(handle.id))!;
      expect(parent).not.toBe(process.pid);
      expect(commandLine(parent)).toMatch(/\/tessera-launcher$/);
      await runner.stop(handle);
      expect(await handle.exited).toEqual({ code: null, signal: 'SIGTERM' });
    } finally {
      await runner.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
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
