import { BuiltinRunner, CORE_BUILTINS, DockerRunner, ProcessRunner, detectDocker, type ContainerAccess, type Runner } from '@tessera/engine';
import type { ServerConfig } from '../config.ts';
import { decideProcessSandbox, type ProcessSandbox } from './process-sandbox.ts';

/** What the server found to run tasks with, for the banner and /api/health. */
export interface RunnerReport {
  name: string;
  detail: string;
}

/** The Docker engine as the server found it, for /api/system. */
export interface DockerReport {
  /** Asked for (TESSERA_RUNNERS auto or docker). */
  wanted: boolean;
  available: boolean;
  version: string | null;
  socket: string | null;
  reason: string | null;
}

export interface TaskRunners {
  runners: Runner[];
  reports: RunnerReport[];
  /** Why an expected runner is missing (e.g. no Docker engine), or runs without a sandbox. */
  notes: string[];
  /** What the admin must read at the start (local processes without a sandbox): the banner prints them as warnings. */
  warnings: string[];
  /** How local processes (process tasks, and process applications too) are isolated here. */
  processSandbox: ProcessSandbox;
  /** The built-in operators (the platform's own, and those the domains register). */
  builtins: BuiltinRunner;
  dockerSocket: string | undefined;
  docker: DockerReport;
}

/**
 * Finds what runs tasks here: the built-in operators always, the Docker engine when one
 * answers (asked for by TESSERA_RUNNERS), local processes, in a sandbox when there is one
 * (process-sandbox.ts). Processes and containers are tagged with `homeId`, so that a
 * sweep never touches another home's tasks.
 * `platformAccess` says how containers reach the API (TESSERA_API_URL, extra hosts).
 */
export async function findTaskRunners(config: ServerConfig, homeId: string, platformAccess?: () => ContainerAccess): Promise<TaskRunners> {
  // First: TESSERA_SANDBOX=bwrap without a working bubblewrap stops the start here.
  const processSandbox = decideProcessSandbox(config);
  const builtins = new BuiltinRunner(CORE_BUILTINS);
  const runners: Runner[] = [builtins];
  const reports: RunnerReport[] = [{ name: 'builtin', get detail() { return `built-in operators: ${builtins.names().join(', ')}`; } }];
  const notes: string[] = [];
  const warnings = processSandbox.warning ? [processSandbox.warning] : [];
  let dockerSocket: string | undefined;
  const wanted = config.runners === 'auto' ? ['docker', 'process'] : config.runners;
  const report: DockerReport = { wanted: wanted.includes('docker'), available: false, version: null, socket: null, reason: null };
  // Containers first: an operator with an image runs in its container when an engine is there.
  if (wanted.includes('docker')) {
    const docker = await detectDocker({ socketPath: config.dockerSocket });
    Object.assign(report, docker.available ? { available: true, version: docker.version, socket: docker.socketPath } : { reason: docker.reason });
    if (docker.available) {
      runners.push(new DockerRunner({ homeId, socketPath: docker.socketPath, shmMb: config.shmMb, ...(platformAccess ? { platformAccess } : {}) }));
      dockerSocket = docker.socketPath;
      reports.push({ name: 'docker', detail: `Docker ${docker.version} at unix://${docker.socketPath}` });
    } else if (config.runners !== 'auto') {
      throw new Error(`TESSERA_RUNNERS asks for docker, but ${docker.reason}`);
    } else {
      notes.push(`no container runner: ${docker.reason}. Operators that only have an image will fail; start Docker or set DOCKER_HOST.`);
    }
  }
  if (wanted.includes('process')) {
    const processRunner = new ProcessRunner({ homeId, sandbox: processSandbox.sandbox, refuse: processSandbox.refusal, launcher: config.launcher });
    runners.push(processRunner);
    reports.push({ name: 'process', detail: `local processes (${processRunner.launcher.kind} launcher), ${processSandbox.detail}` });
    if (processRunner.launcher.fallback) warnings.push(processRunner.launcher.fallback);
  }
  // Applications run as local processes whatever TESSERA_RUNNERS says: the warning stands either way.
  notes.push(...warnings);
  return { runners, reports, notes, warnings, processSandbox, builtins, dockerSocket, docker: report };
}
