import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './__fixtures__/run-cli.ts';
import { startTestServer, writeShellExtension, type TestServer } from '../../server/src/__fixtures__/test-server.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  await writeShellExtension(server.extRoot, 'cli-fixtures', [
    { id: 'fails', tasks: [{ id: 'boom', sh: 'echo "something broke" >&2; exit 4' }] },
    {
      id: 'typed',
      workflow_form: {
        type: 'object',
        properties: { threshold: { type: 'number' }, enabled: { type: 'boolean' }, labels: { type: 'array', items: { type: 'string' } } },
        additionalProperties: false,
      },
      tasks: [{ id: 'echo', sh: 'echo "$THRESHOLD $ENABLED $LABELS"' }],
    },
    {
      id: 'task-settings',
      task_form: {
        type: 'object',
        properties: {
          summarize: {
            type: 'object',
            title: 'summarize',
            properties: {
              STATISTIC: { title: 'STATISTIC', type: 'string', default: 'sum', enum: ['sum', 'mean', 'max'], description: 'What to compute.' },
              COUNT: { title: 'COUNT', type: 'integer', default: 3 },
            },
            additionalProperties: false,
          },
        },
      },
      tasks: [{ id: 'summarize', sh: 'echo "$STATISTIC $COUNT"' }],
    },
  ]);
  await server.call('POST', '/api/workflows/reload');
});
afterAll(async () => {
  await server?.close();
});

/** Runs the real `tessera` bin as a user would, inside the repository. */
function tessera(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli({ url: server.url, args, env });
}

describe('tessera CLI against a real server', () => {
  it('runs hello-world, waits with progress, and exits 0', async () => {
    const r = await tessera(['run', 'hello-world', '--form', 'message=Servus', '--form', 'repeat=3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/4\/4 tasks done, success/);
    expect(r.stdout).toMatch(/^ok\s+r-/m);
    const runId = /(r-[a-z0-9]+-[0-9a-z]+)/.exec(r.stdout)![1]!;
    const logs = await tessera(['logs', runId, 'transform-upper']);
    expect(logs.stdout).toContain('transform (upper): SERVUS');
    const all = await tessera(['logs', runId]);
    expect(all.stdout).toContain('==> summarize (success, try 1) <==');
    const follow = await tessera(['logs', runId, '--follow']);
    expect(follow.stdout).toMatch(/^transform-reverse \| transform \(reverse\): suvreS$/m);
  });

  it('exits non-zero when a run fails and says where to look', async () => {
    const r = await tessera(['run', 'fails']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED');
    expect(r.stdout).toContain('task "boom" failed: exited with code 4');
    expect(r.stdout).toMatch(/logs:\s+tessera logs r-/);
    const runId = /(r-[a-z0-9]+-[0-9a-z]+)/.exec(r.stdout)![1]!;
    const show = await tessera(['show', runId]);
    expect(show.stdout).toMatch(/boom\s+failed\s+1\s+process\s+4/);
    // Access control is off here: the one local user started it.
    expect(show.stdout).toContain('started: by local (principal-investigator)');
    const logs = await tessera(['logs', runId, 'boom']);
    expect(logs.stdout).toContain('something broke');
  });

  it('types --form values by the workflow form and rejects unknown or bad ones', async () => {
    const ok = await tessera(['run', 'typed', '-f', 'threshold=0.25', '-f', 'enabled=yes', '-f', 'labels=lung,liver', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const job = JSON.parse(ok.stdout);
    expect(job.conf.workflow_form).toEqual({ threshold: 0.25, enabled: true, labels: ['lung', 'liver'], single_execution: false });
    const logs = await tessera(['logs', job.runs[0].id, 'echo']);
    expect(logs.stdout.trim()).toBe("0.25 True ['lung', 'liver']");
    const bad = await tessera(['run', 'typed', '-f', 'threshold=high']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"threshold" must be a number');
    const unknown = await tessera(['run', 'typed', '-f', 'treshold=1']);
    expect(unknown.stderr).toContain('the workflow has no parameter "treshold"; its parameters are threshold, enabled, labels');
  });

  it('lists as tables and as JSON, per project', async () => {
    const created = await tessera(['projects', 'create', 'cli-test']);
    expect(created.code).toBe(0);
    const projects = JSON.parse((await tessera(['projects', '--json'])).stdout);
    expect(projects.map((p: { name: string }) => p.name)).toContain('cli-test');
    const wfs = await tessera(['workflows']);
    expect(wfs.stdout).toMatch(/^hello-world\s+hello-world@0\.1\.0\s+4\s+message,repeat/m);
    const none = JSON.parse((await tessera(['runs', '--json', '--project', 'cli-test'])).stdout);
    expect(none.total).toBe(0);
    const some = JSON.parse((await tessera(['runs', '--json'])).stdout);
    expect(some.total).toBeGreaterThan(0);
    const cancel = await tessera(['cancel', 'r-does-not-exist']);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toContain('run "r-does-not-exist" does not exist');
  });

  it('shows a workflow with the settings of its tasks, and runs with --task-form', async () => {
    const r = await tessera(['workflows', 'task-settings']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('TASK SETTINGS (--task-form task.VAR=value)');
    expect(r.stdout).toMatch(/^summarize\s+STATISTIC\s+string\s+sum, mean, max\s+sum\s+What to compute\.$/m);
    expect(r.stdout).toMatch(/^summarize\s+COUNT\s+integer\s+-\s+3$/m);
    const typed = await tessera(['workflows', 'typed']);
    expect(typed.stdout).toMatch(/^threshold\s+number\s+-\s+-/m);
    expect(typed.stdout).toMatch(/^labels\s+array of string/m);
    expect(typed.stdout).not.toContain('TASK SETTINGS');
    const json = JSON.parse((await tessera(['workflows', 'task-settings', '--json'])).stdout);
    expect(json.task_form.properties.summarize.properties.STATISTIC.enum).toEqual(['sum', 'mean', 'max']);
    const missing = await tessera(['workflows', 'no-such-workflow']);
    expect(missing.code).toBe(1);
    const run = await tessera(['run', 'task-settings', '--task-form', 'summarize.STATISTIC=max', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const job = JSON.parse(run.stdout);
    // the server fills in the defaults of the settings not given
    expect(job.conf.task_form).toEqual({ summarize: { env: [{ name: 'STATISTIC', value: 'max' }, { name: 'COUNT', value: '3' }] } });
    const logs = await tessera(['logs', job.runs[0].id, 'summarize']);
    expect(logs.stdout.trim()).toBe('max 3');
  });

  it('explains how to start the server when none answers', async () => {
    const r = await tessera(['runs'], { TESSERA_URL: 'http://127.0.0.1:9' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach the Tessera server at http://127.0.0.1:9');
    expect(r.stderr).toContain('npm start');
  });
});
