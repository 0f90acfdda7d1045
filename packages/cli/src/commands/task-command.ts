import { existsSync, mkdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import {
  createTaskInstance,
  findTemplate,
  memoryBytes,
  parseProcessingContainer,
  parseTaskFile,
  scaleRuleBytes,
  TesseraError,
  type TaskInstance,
} from '@tessera/model';
import { scaleTargetBytes } from '@tessera/engine';
import { localDocker, readProcessingContainerFromImage } from '@tessera/extension-packages';
import { CliError } from '../api-client.ts';

/** Kaapana's "skip this task" exit status. */
export const SKIP_EXIT_CODE = 126;

type Kind = 'task' | 'pc';

/** Which file a path holds: by `--schema`, else by its content (templates: a processing container). */
function kindOf(value: unknown, schema: string | undefined): Kind {
  if (schema === 'task' || schema === 'pc') return schema;
  if (schema !== undefined) throw new CliError(`--schema must be "task" or "pc", not "${schema}"`, { exitCode: 2 });
  return value && typeof value === 'object' && 'templates' in value ? 'pc' : 'task';
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`${path} cannot be read: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** `tessera task validate <file>`: checks a processing-container.json or a task.json (no Docker needed). */
export async function taskValidateCommand(file: string, o: { schema?: string }, out: (t: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const text = await readText(file);
  let guess: unknown;
  try {
    guess = JSON.parse(text);
  } catch {
    guess = undefined;
  }
  const kind = kindOf(guess, o.schema);
  if (kind === 'pc') {
    const pc = parseProcessingContainer(text, file, process.env);
    out(`ok: ${file} is a valid processing-container.json: "${pc.name}", templates ${pc.templates.map((t) => t.identifier).join(', ') || '(none)'}\n`);
  } else {
    const task = parseTaskFile(text, file, process.env);
    const template = typeof task.taskTemplate === 'string' ? `template "${task.taskTemplate}" of image ${task.image}` : `inline template "${task.taskTemplate.identifier}"`;
    out(`ok: ${file} is a valid task: "${task.name}", ${template}\n`);
  }
  return 0;
}

export interface TaskRunOptions {
  /** Where progress and errors go (stderr); the container's output goes to stdout/stderr as it comes. */
  progress?: (t: string) => void;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** Stop the container on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/** Memory limit in bytes: the resources' limit, raised by the inputs' `limit` scale rules (Kaapana's Docker runner). */
export function memoryLimit(instance: TaskInstance): { bytes: number | undefined; why: string[] } {
  let bytes = memoryBytes(instance.resources?.limits?.memory) ?? 0;
  const why: string[] = [];
  for (const c of instance.inputs) {
    const rule = c.scaleRule;
    if (!rule || rule.type !== 'limit') continue;
    const n = scaleTargetBytes(c.hostPath, rule);
    const need = scaleRuleBytes(rule, n);
    why.push(`input "${c.name}": ${rule.mode} ${n} B -> ${Math.ceil(need / 1048576)} MB`);
    bytes = Math.max(bytes, need);
  }
  return { bytes: bytes >= 10 ? Math.ceil(bytes) : undefined, why };
}

/**
 * `tessera task run <task.json>`: runs one task on the local Docker engine, without a
 * Tessera server, as Kaapana's task CLI does: the template from the image's
 * /processing-container.json (or inline), inputs mounted read-only and outputs read-write
 * at their mounted_paths, template env < task env. Streams the container's output, then
 * exits with the container's status (126: skipped).
 */
export async function taskRunCommand(file: string, o: TaskRunOptions = {}): Promise<number> {
  const progress = o.progress ?? ((t: string) => process.stderr.write(t));
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  const task = parseTaskFile(await readText(file), file, process.env);
  const { docker, where } = localDocker();
  const template = typeof task.taskTemplate === 'string'
    ? findTemplate(await readProcessingContainerFromImage(task.image, docker, where), task.taskTemplate, `image "${task.image}"`)
    : task.taskTemplate;
  const instance = createTaskInstance(task, template);
  for (const w of instance.warnings) progress(`tessera task: warning: ${w}\n`);
  // Host paths as given, relative ones from the current folder (Docker needs absolute ones).
  for (const c of [...instance.inputs, ...instance.outputs]) c.hostPath = resolve(c.hostPath);
  for (const c of instance.inputs) {
    if (!existsSync(c.hostPath) || !statSync(c.hostPath).isDirectory()) {
      throw new CliError(`input channel "${c.name}": ${c.hostPath} is not a folder`);
    }
  }
  for (const c of instance.outputs) mkdirSync(c.hostPath, { recursive: true });
  const memory = memoryLimit(instance);
  const inputPaths = new Set(instance.inputs.map((c) => c.hostPath));
  const mounts = [
    ...instance.inputs.map((c) => ({ Type: 'bind' as const, Source: c.hostPath, Target: c.mountedPath, ReadOnly: true })),
    ...instance.outputs.filter((c) => !inputPaths.has(c.hostPath)).map((c) => ({ Type: 'bind' as const, Source: c.hostPath, Target: c.mountedPath, ReadOnly: false })),
  ];
  progress(`tessera task: ${instance.name}: template "${template.identifier}" of ${instance.image} on ${where}` +
    `${memory.bytes ? `, memory limit ${Math.ceil(memory.bytes / 1048576)} MB` : ''}${memory.why.length ? ` (${memory.why.join('; ')})` : ''}\n`);
  for (const c of instance.inputs) progress(`  input  ${c.name}: ${c.hostPath} -> ${c.mountedPath} (read-only)\n`);
  for (const c of instance.outputs) progress(`  output ${c.name}: ${c.hostPath} -> ${c.mountedPath}\n`);

  let container;
  try {
    container = await docker.createContainer({
      Image: instance.image,
      ...(instance.command ? { Cmd: instance.command } : {}),
      Env: instance.env.map((e) => `${e.name}=${e.value}`),
      Labels: { 'tessera.task-cli': basename(file), ...instance.labels },
      HostConfig: {
        Mounts: mounts,
        ...(memory.bytes ? { Memory: memory.bytes, MemorySwap: memory.bytes } : {}),
      },
    });
  } catch (err) {
    const e = err as { statusCode?: number; json?: { message?: string } | null; message: string };
    throw new TesseraError('TESSERA_DOCKER', `could not create a container of ${instance.image} on ${where}: ${(e.json?.message ?? e.message).trim()}`);
  }
  let stopped = false;
  const onSignal = (): void => {
    stopped = true;
    progress('tessera task: stopping the container\n');
    void container.stop({ t: 5 }).catch(() => undefined);
  };
  if (o.handleSignals !== false) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const ended = new Promise<void>((r) => {
      stream.once('end', r);
      stream.once('close', r);
      stream.once('error', () => r());
    });
    container.modem.demuxStream(stream, stdout, stderr);
    const started = Date.now();
    await container.start();
    const status = (await container.wait()) as { StatusCode: number };
    await Promise.race([ended, new Promise((r) => setTimeout(r, 2000).unref())]);
    const info = await container.inspect().catch(() => undefined);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const code = status.StatusCode;
    if (info?.State.OOMKilled) progress(`tessera task: ${instance.name}: failed: out of memory (limit ${Math.ceil((memory.bytes ?? 0) / 1048576)} MB) after ${secs} s\n`);
    else if (stopped) progress(`tessera task: ${instance.name}: stopped (exit code ${code})\n`);
    else if (code === 0) progress(`tessera task: ${instance.name}: success in ${secs} s\n`);
    else if (code === SKIP_EXIT_CODE) progress(`tessera task: ${instance.name}: skipped (exit code 126) after ${secs} s\n`);
    else progress(`tessera task: ${instance.name}: failed with exit code ${code} after ${secs} s\n`);
    return code;
  } finally {
    if (o.handleSignals !== false) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    await container.remove({ force: true }).catch(() => undefined);
  }
}
