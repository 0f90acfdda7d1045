import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessRunner, type SandboxProbe } from '@tessera/engine';
import { makeTestLaunch } from '../../../engine/src/__fixtures__/task-launch.ts';
import { loadConfig } from '../config.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { decideProcessSandbox } from './process-sandbox.ts';
import { findTaskRunners } from './task-runners.ts';

const missing: () => SandboxProbe = () => ({ reason: 'bubblewrap (bwrap) is not installed' });
const unreachable: () => SandboxProbe = () => {
  throw new Error('TESSERA_SANDBOX=off must not look for bubblewrap');
};

describe('the rule for local processes without a sandbox', () => {
  it('with access control on and no permission, refuses them with a reason that names the fix', () => {
    const d = decideProcessSandbox({ sandbox: 'auto', auth: 'on', allowUnsandboxed: false }, missing);
    expect(d.sandbox).toBeUndefined();
    expect(d.refusal).toBe(
      'this server runs no local process without a sandbox, and it has none (bubblewrap (bwrap) is not installed); with access control on, a process task or application could read ' +
        "the server's database and every project's files. To fix: install bubblewrap (apt-get install bubblewrap) and restart the server (TESSERA_SANDBOX=auto finds it), " +
        'or set TESSERA_ALLOW_UNSANDBOXED=1 to run local processes unsandboxed anyway',
    );
    expect(d.detail).toBe('refused: no sandbox');
    expect(d.warning).toMatch(/^no sandbox for process tasks and applications \(bubblewrap \(bwrap\) is not installed\): they are refused while access control is on/);
    // Turned off on purpose: the same rule, the same refusal.
    const off = decideProcessSandbox({ sandbox: 'off', auth: 'on', allowUnsandboxed: false }, unreachable);
    expect(off.refusal).toContain('it has none (TESSERA_SANDBOX=off)');
  });

  it('runs them unsandboxed, with a warning, when the admin allows it or access control is off', () => {
    const allowed = decideProcessSandbox({ sandbox: 'auto', auth: 'on', allowUnsandboxed: true }, missing);
    expect(allowed).toMatchObject({ sandbox: undefined, refusal: undefined, detail: 'NOT sandboxed (TESSERA_ALLOW_UNSANDBOXED=1)' });
    expect(allowed.warning).toMatch(/^process tasks and applications run WITHOUT a sandbox \(bubblewrap \(bwrap\) is not installed; allowed by TESSERA_ALLOW_UNSANDBOXED=1\)/);
    const laptop = decideProcessSandbox({ sandbox: 'off', auth: 'off', allowUnsandboxed: false }, unreachable);
    expect(laptop).toMatchObject({ refusal: undefined, detail: 'NOT sandboxed (TESSERA_AUTH=off)' });
    expect(laptop.warning).toContain('TESSERA_SANDBOX=off; allowed by TESSERA_AUTH=off');
  });

  it('TESSERA_SANDBOX=bwrap without a working bubblewrap stops the start', () => {
    expect(() => decideProcessSandbox({ sandbox: 'bwrap', auth: 'off', allowUnsandboxed: true }, missing)).toThrow(
      'TESSERA_SANDBOX=bwrap asks for a sandbox, but bubblewrap (bwrap) is not installed; install bubblewrap (apt-get install bubblewrap) and restart the server, or set TESSERA_SANDBOX=auto to start without one',
    );
  });

  it('reads TESSERA_SANDBOX and TESSERA_ALLOW_UNSANDBOXED, refusing values it does not know', () => {
    expect(loadConfig({})).toMatchObject({ sandbox: 'auto', allowUnsandboxed: false, auth: 'on' });
    expect(loadConfig({ TESSERA_SANDBOX: 'bwrap', TESSERA_ALLOW_UNSANDBOXED: '1' })).toMatchObject({ sandbox: 'bwrap', allowUnsandboxed: true });
    expect(() => loadConfig({ TESSERA_SANDBOX: 'docker' })).toThrow('TESSERA_SANDBOX="docker" must be auto, bwrap or off');
    expect(() => loadConfig({ TESSERA_ALLOW_UNSANDBOXED: 'yes' })).toThrow('TESSERA_ALLOW_UNSANDBOXED="yes" must be 1 or 0');
  });
});

describe('the server without a sandbox', () => {
  let dir: string | undefined;
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fails a run\'s process task with the refusal when access control is on and nobody allowed it', async () => {
    const found = await findTaskRunners({ ...loadConfig({}), runners: ['process'], sandbox: 'off', auth: 'on', allowUnsandboxed: false }, 'test-refusal');
    expect(found.reports.find((r) => r.name === 'process')?.detail).toBe('local processes (native launcher), refused: no sandbox');
    expect(found.notes).toEqual(found.warnings);
    const runner = found.runners.find((r): r is ProcessRunner => r instanceof ProcessRunner)!;
    dir = await mkdtemp(join(tmpdir(), 'tessera-refusal-'));
    const launch = await makeTestLaunch({ dir, dagId: 'refusal', task: { process: { command: ['sh', '-c', 'echo ran'] } } });
    try {
      const outcome = await (await runner.start(launch)).done;
      expect(outcome.state).toBe('failed');
      expect(outcome.reason).toContain('TESSERA_ALLOW_UNSANDBOXED=1');
      expect(outcome.reason).toContain('apt-get install bubblewrap');
      expect(await readFile(launch.logFile, 'utf8')).toContain(outcome.reason!);
    } finally {
      await runner.close();
    }
  });

  it('says so in GET /api/system (runner report and notes) when it runs them unsandboxed', async () => {
    s = await startTestServer({ sandbox: 'off', auth: 'off' });
    const system = (await s.call('GET', '/api/system')).body;
    expect(system.runners).toContainEqual({ name: 'process', detail: 'local processes (native launcher), NOT sandboxed (TESSERA_AUTH=off)' });
    expect(system.runner_notes).toContainEqual(expect.stringMatching(/^process tasks and applications run WITHOUT a sandbox \(TESSERA_SANDBOX=off; allowed by TESSERA_AUTH=off\)/));
    expect(s.tessera.warnings).toEqual(system.runner_notes.filter((n: string) => n.includes('WITHOUT a sandbox')));
  });
});
