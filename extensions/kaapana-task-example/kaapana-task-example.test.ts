import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskInstance, expandTaskTemplates, findTemplate, parseProcessingContainer, parseTaskFile, validateDagSpec, validateTaskFile } from '../../packages/model/src/index.ts';
import { defineTaskOperator, defineWorkflow } from '../../packages/sdk/src/index.ts';
import { validateTaskForm } from '../../packages/engine/src/scheduler/trigger-input.ts';
import { contractEnv } from '../../packages/engine/src/operator-contract.ts';
import { docker, dockerProblem, dockerSocket, skipDocker } from '../../packages/engine/src/__fixtures__/docker-env.ts';
import { forgetImage, pushImage, registryProblem, startRegistry } from '../../packages/engine/src/__fixtures__/test-registry.ts';
import { startTestServer, waitFor, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import { readProcessingContainerFromImage } from '../../packages/extension-packages/src/index.ts';
import workflow from './workflows/kaapana-task-example.ts';
import fromImage from './workflows/kaapana-task-from-image.ts';

const EXT_DIR = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(EXT_DIR, '../..');
const IMAGE = 'tessera-ext/kaapana-task-example:0.1.0';
const run = promisify(execFile);

describe('kaapana-task-example: the workflow and the Task API files', () => {
  const spec = workflow.toDagSpec();

  it('maps channels to folders of the workflow dir, mounted at the mounted paths; the iochannel makes an upstream', () => {
    const [gen, sum] = spec.tasks;
    expect(gen!.container).toEqual({
      image: IMAGE,
      args: ['python3', '-u', '/kaapana/app/tasks.py', 'generate'],
      mounts: [{ source: 'generate/numbers', target: '/home/kaapana/numbers', read_only: false }],
    });
    expect(sum!.upstream).toEqual(['generate']);
    expect(sum!.container!.mounts).toEqual([
      { source: 'summarize/summary', target: '/home/kaapana/summary', read_only: false },
      { source: 'generate/numbers', target: '/home/kaapana/numbers', read_only: true },
    ]);
    // The template's memory limit and scale rule feed the RAM pool.
    expect(gen!.resources).toEqual({ ram_mb: 200 });
    expect(sum!.resources).toEqual({ ram_mb: 100, ram_scale: [{ source: 'generate/numbers', factor: 50, power: 1, mode: 'max_item_sum', target_glob: '*.txt' }] });
    expect(gen!.env).toEqual({ COUNT: '3', WORK_SECONDS: '0', SEED: '1' });
  });

  it('turns adjustable env into typed form fields with choices; not-adjustable ones stay out', () => {
    const form = spec.task_form as { properties: Record<string, { properties: Record<string, unknown> }> };
    expect(Object.keys(form.properties.generate!.properties)).toEqual(['COUNT', 'WORK_SECONDS']);
    expect(form.properties.generate!.properties.COUNT).toMatchObject({ type: 'integer', default: 3 });
    expect(form.properties.summarize!.properties.STATISTIC).toMatchObject({ type: 'string', enum: ['sum', 'mean', 'max'], default: 'sum' });
  });

  it('takes conf.task_form in both of Kaapana\'s shapes, typed, and gives it precedence over the operator env', () => {
    const tf = validateTaskForm(spec, { generate: { COUNT: 5 }, summarize: { env: [{ name: 'STATISTIC', value: 'max' }] } })!;
    expect(tf.generate!.env).toEqual(expect.arrayContaining([{ name: 'COUNT', value: '5' }]));
    expect(tf.summarize!.env).toEqual([{ name: 'STATISTIC', value: 'max' }]);
    expect(() => validateTaskForm(spec, { summarize: { STATISTIC: 'median' } })).toThrow(/task_form\.summarize\.STATISTIC must be one of \["sum","mean","max"\]/);
    expect(() => validateTaskForm(spec, { generate: { env: [{ name: 'COUNT', value: 'x' }] } })).toThrow(/task_form\.generate\.COUNT must be integer/);
    expect(() => validateTaskForm(spec, { generate: { SEED: '2' } })).toThrow(/task_form\.generate\.SEED is not a known property/);
    const conf = { workflow_form: {}, data_form: {}, project_form: { id: 'p', name: 'admin' }, task_form: tf };
    const env = contractEnv({ workflowDir: '/w', runId: 'r', dagId: spec.id, task: spec.tasks[0]!, conf, services: {} });
    expect(env).toMatchObject({ COUNT: '5', WORK_SECONDS: '0', SEED: '1' });
  });

  it('validates processing-container.json and task.json with errors naming the path', async () => {
    const pcText = await readFile(join(EXT_DIR, 'processing', 'processing-container.json'), 'utf8');
    const pc = parseProcessingContainer(pcText);
    expect(pc.templates.map((t) => t.identifier)).toEqual(['generate', 'summarize']);
    const broken = JSON.parse(pcText);
    broken.templates[1].inputs[0].scale_rule.mode = 'median';
    delete broken.templates[0].outputs[0].mounted_path;
    broken.templates[0].env[0].value = 3;
    expect(() => parseProcessingContainer(JSON.stringify(broken))).toThrow(
      /templates\[0\]\.outputs\[0\]\.mounted_path is required.*templates\[0\]\.env\[0\]\.value must be string.*templates\[1\]\.inputs\[0\]\.scale_rule\.mode must be one of/,
    );
    expect(() => validateTaskFile({ name: 't', image: 'i', taskTemplate: 'x', inputs: [{ name: 'a' }] })).toThrow(/inputs\[0\]\.volume_source is required/);
    // The docs' `input.host_path` form, unknown keys ignored (as Kaapana's models do).
    const task = parseTaskFile(JSON.stringify({ name: 't', image: 'i', taskTemplate: 'summarize', extra: 1, inputs: [{ name: 'numbers', input: { host_path: '/in' } }], env: [{ name: 'STATISTIC', value: 'mean' }, { name: 'NEW', value: '1' }] }));
    const inst = createTaskInstance(task, findTemplate(pc, 'summarize'));
    expect(inst.inputs).toEqual([{ name: 'numbers', hostPath: '/in', mountedPath: '/home/kaapana/numbers', scaleRule: pc.templates[1]!.inputs[0]!.scale_rule }]);
    expect(inst.outputs).toEqual([]);
    expect(inst.warnings).toEqual(['output channel "summary" has no host_path in the task; it is not mounted']);
    expect(inst.env).toEqual([{ name: 'STATISTIC', value: 'mean' }, { name: 'NEW', value: '1' }]);
    expect(() => findTemplate(pc, 'nope')).toThrow(/has no task template "nope" \(it has "generate", "summarize"\)/);
  });
});

describe('kaapana-task-from-image: a template named without its processing-container.json', () => {
  const spec = fromImage.toDagSpec();

  it('names the template and the channel mapping; expanded, it is what defineTaskOperator makes with the file', async () => {
    expect(spec.tasks[0]!.container).toEqual({ image: IMAGE, task_template: { identifier: 'generate' } });
    expect(spec.tasks[1]!.container!.task_template).toEqual({ identifier: 'summarize', iochannels: [{ input: 'numbers', from: 'generate', output: 'numbers' }] });
    expect(spec.tasks[1]!.upstream).toEqual(['generate']);
    expect(spec.task_form).toBeUndefined();
    const pc = parseProcessingContainer(await readFile(join(EXT_DIR, 'processing', 'processing-container.json'), 'utf8'));
    const expanded = validateDagSpec(expandTaskTemplates(spec, new Map([[IMAGE, pc]]), { strict: true }));
    const explicit = workflow.toDagSpec();
    expect(expanded.tasks.map((t) => t.container)).toEqual(explicit.tasks.map((t) => t.container));
    expect(expanded.tasks.map((t) => t.resources)).toEqual(explicit.tasks.map((t) => t.resources));
    expect(expanded.tasks.map((t) => t.title)).toEqual(explicit.tasks.map((t) => t.title));
    // Operator env over the template's; the form's default is the effective value.
    expect(expanded.tasks[0]!.env).toEqual({ COUNT: '2', WORK_SECONDS: '0', SEED: '1' });
    const form = expanded.task_form as { properties: Record<string, { properties: Record<string, { default?: unknown }> }> };
    expect(form.properties.generate!.properties.COUNT!.default).toBe(2);
    expect(form.properties.summarize).toEqual((explicit.task_form as typeof form).properties.summarize);
  });

  it('a missing template: strict (install) throws naming the image, the template and the ones it has; else the task keeps the reason', async () => {
    const pc = parseProcessingContainer(await readFile(join(EXT_DIR, 'processing', 'processing-container.json'), 'utf8'));
    const broken = { ...spec, tasks: spec.tasks.map((t) => (t.id === 'summarize' ? { ...t, container: { ...t.container!, task_template: { ...t.container!.task_template!, identifier: 'median' } } } : t)) };
    expect(() => expandTaskTemplates(broken, new Map([[IMAGE, pc]]), { strict: true })).toThrow(
      `workflow "kaapana-task-from-image", task "summarize": image "${IMAGE}" (processing container "kaapana-task-example") has no task template "median" (it has "generate", "summarize")`,
    );
    const lenient = expandTaskTemplates(broken, new Map([[IMAGE, new Error('image gone')]]), { strict: false });
    expect(lenient.tasks[0]!.container!.task_template!.problem).toBe('image gone');
    expect(lenient.tasks[1]!.container!.task_template!.problem).toBe('image gone');
  });
});

describe.skipIf(skipDocker)('kaapana-task-example in Docker', () => {
  let work = '';
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    work = await mkdtemp(join(tmpdir(), 'tessera-ktask-'));
    await run('/usr/bin/docker', ['build', '-q', '-t', IMAGE, join(EXT_DIR, 'processing')], { env: { ...process.env, DOCKER_HOST: `unix://${dockerSocket}` } });
  }, 300_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('reads /processing-container.json from the image', async () => {
    const pc = await readProcessingContainerFromImage(IMAGE, docker);
    expect(pc.templates.map((t) => t.identifier)).toEqual(['generate', 'summarize']);
    await expect(readProcessingContainerFromImage('tessera-test/python:bookworm', docker)).rejects.toThrow(/has no \/processing-container\.json/);
  });

  it('runs the workflow through a server: task A\'s output channel is task B\'s input, task_form sets the env', { timeout: 180_000 }, async () => {
    const s: TestServer = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
    try {
      // From the built-in collection (this folder), as a user installs it.
      const installed = await s.call('POST', '/api/extensions/kaapana-task-example/install?wait=true', {});
      expect(installed.status, JSON.stringify(installed.body)).toBe(200);
      const wf = (await s.call('GET', '/api/workflows/kaapana-task-example')).body;
      expect(wf.task_form.properties.summarize.properties.STATISTIC.enum).toEqual(['sum', 'mean', 'max']);
      const job = await s.call('POST', '/api/jobs', { workflow: 'kaapana-task-example', conf: { task_form: { generate: { COUNT: 2 }, summarize: { env: [{ name: 'STATISTIC', value: 'max' }] } } } });
      expect(job.status, JSON.stringify(job.body)).toBe(201);
      const done = await waitFor(async () => {
        const r = (await s.call('GET', `/api/runs/${job.body.runs[0].id}`)).body;
        return ['success', 'failed'].includes(r.state) ? r : undefined;
      }, 150_000, 'the run');
      expect(done.tasks.map((t: { id: string; state: string; runner: string }) => [t.id, t.state, t.runner]), JSON.stringify(done)).toEqual([
        ['generate', 'success', 'docker'],
        ['summarize', 'success', 'docker'],
      ]);
      const wd = done.workflow_dir as string;
      expect((await readdir(join(wd, 'generate', 'numbers'))).sort()).toEqual(['item-1', 'item-2']);
      const summary = JSON.parse(await readFile(join(wd, 'summarize', 'summary', 'item-2', 'summary.json'), 'utf8'));
      expect(summary).toMatchObject({ item: 'item-2', statistic: 'max', count: 6 });
      const log = (await s.call('GET', `/api/runs/${done.id}/tasks/summarize/log`)).body as string;
      expect(log).toContain('summarize: item-2: max =');

      // The workflow that names only the templates: expanded at install from the image's /processing-container.json.
      const wf2 = (await s.call('GET', '/api/workflows/kaapana-task-from-image')).body;
      expect(wf2.task_form.properties.summarize.properties.STATISTIC.enum).toEqual(['sum', 'mean', 'max']);
      const job2 = await s.call('POST', '/api/jobs', { workflow: 'kaapana-task-from-image', conf: { task_form: { summarize: { STATISTIC: 'mean' } } } });
      expect(job2.status, JSON.stringify(job2.body)).toBe(201);
      const done2 = await waitFor(async () => {
        const r = (await s.call('GET', `/api/runs/${job2.body.runs[0].id}`)).body;
        return ['success', 'failed'].includes(r.state) ? r : undefined;
      }, 150_000, 'the run');
      expect(done2.tasks.map((t: { id: string; state: string }) => [t.id, t.state]), JSON.stringify(done2)).toEqual([['generate', 'success'], ['summarize', 'success']]);
      // COUNT=2 from the operator's env over the template's 3; STATISTIC from task_form.
      expect((await readdir(join(done2.workflow_dir, 'generate', 'numbers'))).sort()).toEqual(['item-1', 'item-2']);
      const summary2 = JSON.parse(await readFile(join(done2.workflow_dir, 'summarize', 'summary', 'item-1', 'summary.json'), 'utf8'));
      expect(summary2).toMatchObject({ item: 'item-1', statistic: 'mean' });
    } finally {
      await s.close();
    }
  });

  it('ext install: a template the image lacks fails the install with the reason, and nothing is installed', { timeout: 120_000 }, async () => {
    const builtin = join(work, 'builtin');
    const dir = join(builtin, 'kaapana-task-broken');
    await mkdir(join(dir, 'workflows'), { recursive: true });
    // The image as a registry image (no build context): the engine holds it, so it is not pulled.
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'kaapana-task-broken', version: '0.1.0', kind: 'workflow', title: 'broken', description: 'a template the image lacks', workflows: ['workflows/broken.json'], images: [{ name: IMAGE }] }));
    const broken = defineWorkflow({ id: 'kaapana-task-broken' });
    broken.task(defineTaskOperator({ image: IMAGE, template: 'median' }));
    await writeFile(join(dir, 'workflows', 'broken.json'), JSON.stringify(broken.toDagSpec()));
    const s = await startTestServer({ runners: ['docker', 'process'], dockerSocket, builtinExtensionsDir: builtin, defaultExtensions: [] });
    try {
      const res = await s.call('POST', '/api/extensions/kaapana-task-broken/install?wait=true', {});
      expect(res.status).not.toBe(200);
      expect(JSON.stringify(res.body).replace(/\\"/g, '"')).toContain(`task "median": image "${IMAGE}" (processing container "kaapana-task-example") has no task template "median" (it has "generate", "summarize")`);
      expect((await s.call('GET', '/api/workflows/kaapana-task-broken')).status).toBe(404);
      const ext = (await s.call('GET', '/api/extensions/kaapana-task-broken')).body;
      expect(ext.state, JSON.stringify(ext)).toBe('error');
      expect(ext.installed, JSON.stringify(ext)).toBeNull();
      // The engine keeps the image: this install did not pull it.
      expect((await docker!.getImage(IMAGE).inspect()).Id).toMatch(/^sha256:/);
    } finally {
      await s.close();
    }
  });

  it('a processing container from a registry, named only by its templates: pulled at install, read, run', { timeout: 180_000 }, async () => {
    expect(registryProblem, 'docker-registry (apt-get install docker-registry)').toBeUndefined();
    const registry = await startRegistry();
    const ref = `${registry.host}/kaapana-task-example:1`;
    const builtin = join(work, 'from-registry');
    const dir = join(builtin, 'kaapana-task-pulled');
    await mkdir(join(dir, 'workflows'), { recursive: true });
    try {
      // A third party's image in a registry; this engine does not have it under that name.
      await pushImage(docker!, IMAGE, ref);
      await forgetImage(docker!, ref);
      await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'kaapana-task-pulled', version: '0.1.0', kind: 'workflow', title: 'pulled', description: 'templates read from a pulled image', workflows: ['workflows/pulled.json'], images: [{ name: ref }] }));
      const wf = defineWorkflow({ id: 'kaapana-task-pulled' });
      const numbers = wf.task(defineTaskOperator({ image: ref, template: 'generate', env: { COUNT: '1' }, timeout: 600 }));
      wf.task(defineTaskOperator({ image: ref, template: 'summarize', timeout: 600 }), { iochannels: [{ from: numbers, output: 'numbers', input: 'numbers' }] });
      await writeFile(join(dir, 'workflows', 'pulled.json'), JSON.stringify(wf.toDagSpec()));
      const s = await startTestServer({ runners: ['docker', 'process'], dockerSocket, builtinExtensionsDir: builtin, defaultExtensions: [] });
      try {
        const installed = await s.call('POST', '/api/extensions/kaapana-task-pulled/install?wait=true', {});
        expect(installed.status, JSON.stringify(installed.body)).toBe(200);
        // Pulled by the install, then its /processing-container.json read: the task form is the template's.
        expect((await docker!.getImage(ref).inspect()).Id).toMatch(/^sha256:/);
        const spec = (await s.call('GET', '/api/workflows/kaapana-task-pulled')).body;
        expect(spec.task_form.properties.summarize.properties.STATISTIC.enum).toEqual(['sum', 'mean', 'max']);
        const job = await s.call('POST', '/api/jobs', { workflow: 'kaapana-task-pulled', conf: { task_form: { summarize: { STATISTIC: 'max' } } } });
        expect(job.status, JSON.stringify(job.body)).toBe(201);
        const done = await waitFor(async () => {
          const r = (await s.call('GET', `/api/runs/${job.body.runs[0].id}`)).body;
          return ['success', 'failed'].includes(r.state) ? r : undefined;
        }, 150_000, 'the run');
        expect(done.tasks.map((t: { id: string; state: string }) => [t.id, t.state]), JSON.stringify(done)).toEqual([['generate', 'success'], ['summarize', 'success']]);
        const summary = JSON.parse(await readFile(join(done.workflow_dir, 'summarize', 'summary', 'item-1', 'summary.json'), 'utf8'));
        expect(summary).toMatchObject({ item: 'item-1', statistic: 'max' });
      } finally {
        await s.close();
      }
    } finally {
      await forgetImage(docker!, ref).catch(() => undefined);
      await registry.stop();
    }
  });

  const cli = (args: string[], cwd: string) =>
    run(process.execPath, [join(REPO, 'bin', 'tessera.mjs'), ...args], { cwd, env: { ...process.env, DOCKER_HOST: `unix://${dockerSocket}` } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('tessera task run: inputs read-only, outputs written, logs streamed, the exit status its own (126: skipped)', { timeout: 120_000 }, async () => {
    const dir = join(work, 'cli');
    await mkdir(join(dir, 'numbers', 'a'), { recursive: true });
    await writeFile(join(dir, 'numbers', 'a', 'numbers.txt'), '4\n9\n2\n');
    await cp(join(EXT_DIR, 'tasks', 'summarize-task.json'), join(dir, 'task.json'));
    expect((await cli(['task', 'validate', 'task.json'], dir)).stdout).toContain('ok: task.json is a valid task: "summarize-example"');
    const ok = await cli(['task', 'run', 'task.json'], dir);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('summarize: a: max = 9');
    expect(ok.stderr).toMatch(/input  numbers: .*numbers -> \/home\/kaapana\/numbers \(read-only\)/);
    expect(ok.stderr).toMatch(/summarize-example: success in/);
    expect(JSON.parse(await readFile(join(dir, 'summary', 'a', 'summary.json'), 'utf8'))).toMatchObject({ statistic: 'max', value: 9 });

    // A task that writes into its read-only input fails with the container's own status.
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ name: 'bad', image: IMAGE, taskTemplate: 'summarize', command: ['sh', '-c', 'touch /home/kaapana/numbers/x || exit 3'], inputs: [{ name: 'numbers', volume_source: { host_path: './numbers' } }] }));
    const bad = await cli(['task', 'run', 'bad.json'], dir);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('bad: failed with exit code 3');
    expect(existsSync(join(dir, 'numbers', 'x'))).toBe(false);

    await mkdir(join(dir, 'empty'));
    await writeFile(join(dir, 'skip.json'), JSON.stringify({ name: 'skip', image: IMAGE, taskTemplate: 'summarize', inputs: [{ name: 'numbers', input: { host_path: './empty' } }], outputs: [{ name: 'summary', volume_source: { host_path: './s2' } }] }));
    const skip = await cli(['task', 'run', 'skip.json'], dir);
    expect(skip.code).toBe(126);
    expect(skip.stderr).toContain('skip: skipped (exit code 126)');

    const invalid = await cli(['task', 'validate', 'bad-pc.json'], dir);
    expect(invalid.code).toBe(1);
  });
});
