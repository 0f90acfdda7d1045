import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Kysely } from '@tessera/db';
import { paramsEnv, validateParams, type AppSpecT, type LoadedExtension } from '@tessera/extension-packages';
import { TesseraError } from '@tessera/model';
import type { AppInstancesTable, AppState, AppTables } from './app-tables.ts';
import { tailFile } from './log-tail.ts';
import { APP_PREFIX, PROXY_SECRET_HEADER, type ProxyTarget } from './proxy/app-paths.ts';
import type { AppHandle, AppRunner } from './runners/app-runner.ts';
import { freePort } from './runners/free-port.ts';

/** The variable that carries an instance's (or a task's) scoped API token. */
export const API_TOKEN_VAR = 'TESSERA_API_TOKEN';

const INSTANCE_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

export interface AppInstance {
  id: string;
  name: string;
  project: string;
  extension: string;
  version: string;
  state: AppState;
  reason: string | null;
  runner: string;
  params: Record<string, unknown>;
  /** Path of the instance on the platform's port. */
  url: string;
  created_at: string;
  started_at: string | null;
  /** The workflow task that launched it and waits for a person to mark it complete. */
  task: { run: string; task: string; completed_at: string | null } | null;
}

export interface AppManagerOptions {
  db: Kysely<AppTables>;
  home: string;
  /** Installed extensions (application ones are launchable). */
  extensions: () => LoadedExtension[];
  /** Install parameter values of an installed extension. */
  installParams: (name: string) => Record<string, unknown>;
  projects: { byName: (name: string) => Promise<{ id: string; name: string }>; nameOf: (id: string) => Promise<string> };
  /** The project's result bucket folder (mounted when the app spec asks for it). */
  resultsDir: (projectId: string) => string;
  /** The workflow dir of a run (mounted in an instance that run's launch-app task launched). */
  workflowDir: (runId: string) => string;
  services: () => Record<string, string>;
  /** The origin an instance is served on when it is not the platform's own (`http://<instance>--<project>.localhost:apps-port`); its `url` starts with it. */
  origin?: (project: string, instance: string) => string;
  log: { info: (m: string) => void; warn: (m: string) => void; error: (m: string) => void };
  /** Called when an instance no longer listens on `port` (the proxy drops its connections to it). */
  released?: (port: number) => void;
  /**
   * The runners, in order of preference: an instance runs on the first that can run its
   * spec (the Docker runner first, when an engine answers, for apps with a `container`).
   * The manager closes them when it closes.
   */
  runners: AppRunner[];
  /** Told of every state change of an instance (the event stream), once it is recorded. */
  changed?: (instance: AppInstance) => void;
  /** Issues and revokes each instance's scoped API credential (none: instances get no credential). */
  credentials?: AppCredentials;
}

/**
 * The scoped API credentials of application instances: the server's access control issues
 * one each time an instance starts, acting in its project with its launcher's rights, and
 * revokes it when the instance ends.
 */
export interface AppCredentials {
  /** Issues a credential for an instance that starts; answers the variables that carry it (`TESSERA_API_TOKEN`), none when access control is off. */
  issue(instance: AppInstancesTable): Promise<Record<string, string>>;
  /** Revokes an instance's credentials: it ended. */
  revoke(instanceId: string): Promise<void>;
  /** At load: revokes every instance's credential (their apps ended with the last server; each start issues a new one). */
  revokeAll(): Promise<void>;
}

/** Who launches an instance: its API token acts with their rights (`userId` null: no user, e.g. a triggered workflow). */
export interface Launcher {
  userId: string | null;
  role: string | null;
}

interface Live {
  row: AppInstancesTable;
  target: ProxyTarget;
  /** Stops what runs now (its runner's handle); undefined when nothing does. */
  stop?: () => Promise<void>;
  stopping?: boolean;
  /** #run has begun for this launch. */
  started?: boolean;
  /** An API credential was issued for what runs now (revoked when it ends). */
  credentialed?: boolean;
  /** The latest revocation of its credential. */
  revoked?: Promise<void>;
}

/**
 * Application instances: launch (per project, with parameters), health, logs, stop;
 * and the routing table of the subpath proxy. What should run is recorded before it is
 * started, so that a restart starts it again.
 */
export class AppManager {
  readonly #o: AppManagerOptions;
  /** By `<project name>/<instance name>`. */
  readonly #live = new Map<string, Live>();
  /** Waiters of workflow tasks, by instance id. */
  readonly #waiters = new Map<string, () => void>();
  #closed = false;

  constructor(options: AppManagerOptions) {
    this.#o = options;
  }

  /** The proxy's lookup. */
  target(project: string, instance: string): ProxyTarget | undefined {
    return this.#live.get(`${project}/${instance}`)?.target;
  }

  /** An instance's log, in its own folder `<home>/apps/<id>/`. */
  logFile(id: string): string {
    return join(this.#o.home, 'apps', id, 'app.log');
  }

  /**
   * Loads every instance the last server knew, before runs resume (a workflow task that
   * waited for a person finds its instance). What should run is marked starting and
   * started again by resume(), once the platform listens.
   */
  async load(): Promise<void> {
    await this.#o.credentials?.revokeAll();
    const rows = await this.#o.db.selectFrom('app_instances').selectAll().execute();
    for (const row of rows) {
      const project = await this.#o.projects.nameOf(row.project_id);
      if (row.desired !== 'running') {
        // Whatever the state column says: nothing of it runs now.
        row.state = 'stopped';
        this.#live.set(`${project}/${row.name}`, { row, target: { state: 'stopped', port: null, ingress: ingressOf(row), reason: row.reason } });
        continue;
      }
      this.#live.set(`${project}/${row.name}`, { row, target: { state: 'starting', port: null, ingress: ingressOf(row), reason: null } });
    }
  }

  /** Starts again every instance that should run (their processes ended with the last server). */
  async resume(): Promise<{ restarted: number }> {
    let restarted = 0;
    for (const [key, live] of this.#live) {
      if (live.row.desired !== 'running' || live.stop || live.started) continue;
      await this.#o.runners.find((r) => r.name === live.row.runner)?.removeStale({ appId: live.row.id, ...(live.row.handle ? { handleId: live.row.handle } : {}) });
      restarted++;
      void this.#run(live, key.slice(0, key.indexOf('/')), 'started again after a server restart');
    }
    return { restarted };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#live.values()].filter((l) => l.stop).map(async (l) => {
      l.stopping = true;
      await l.stop!();
    }));
    await Promise.all(this.#o.runners.map((r) => r.close()));
  }

  async launch(
    extensionName: string,
    o: { project: string; name?: string; params?: Record<string, unknown>; task?: { runId: string; taskId: string; env: Record<string, string> }; launchedBy?: Launcher },
  ): Promise<AppInstance> {
    const ext = this.#o.extensions().find((e) => e.manifest.name === extensionName);
    if (!ext) {
      throw new TesseraError('TESSERA_NOT_FOUND', `application "${extensionName}" is not installed; install it first (tessera ext install ${extensionName}), or see what is: tessera ext list --kind application`);
    }
    if (ext.manifest.kind !== 'application' || !ext.manifest.app) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `extension "${extensionName}" is a ${ext.manifest.kind} extension; only application extensions are launched (run its workflows with tessera run)`);
    }
    const spec = ext.manifest.app;
    const project = await this.#o.projects.byName(o.project);
    const multi = spec.instances === 'multi';
    let name = o.name ?? extensionName;
    if (o.name !== undefined && !multi && !o.task) throw new TesseraError('TESSERA_INVALID_REQUEST', `application "${extensionName}" has one instance per project; it takes no instance name`);
    if (!INSTANCE_NAME.test(name)) throw new TesseraError('TESSERA_INVALID_REQUEST', `instance name "${name}" is invalid: use 1-40 lower-case letters, digits and "-"`);
    // Launch values over install values over the manifest's defaults.
    const params = validateParams(ext.manifest.parameters ?? {}, { ...this.#o.installParams(extensionName), ...o.params });
    if (multi && o.name === undefined) {
      for (let n = 1; ; n++) {
        name = `${extensionName}-${n}`;
        if (!this.#live.has(`${project.name}/${name}`)) break;
      }
    }
    const key = `${project.name}/${name}`;
    const existing = this.#live.get(key);
    // A task launched again (the server restarted while it waited) finds its instance.
    if (o.task && existing?.row.run_id === o.task.runId && existing.row.task_id === o.task.taskId && existing.target.state !== 'stopped' && existing.target.state !== 'failed') {
      return this.#json(existing, project.name);
    }
    if (existing && (existing.target.state === 'running' || existing.target.state === 'starting')) {
      throw new TesseraError('TESSERA_CONFLICT', `${name} already runs in project ${project.name} (${existing.target.state}) at ${APP_PREFIX}${project.name}/release/${name}/; stop it first (tessera app stop ${name})`);
    }
    const chosen = this.#o.runners.find((r) => r.canRun(spec));
    if (!chosen) {
      throw spec.container
        ? new TesseraError('TESSERA_DOCKER', `application "${extensionName}" runs only in a container (${spec.container.image}), and this server found no Docker engine: start Docker (or set DOCKER_HOST) and restart the server`)
        : new TesseraError('TESSERA_INVALID_REQUEST', `application "${extensionName}" has neither a process nor a container to run`);
    }
    const refused = chosen.refusal?.();
    if (refused !== undefined) throw new TesseraError('TESSERA_SANDBOX', `application "${extensionName}" was not launched: ${refused}`);
    const runner = chosen.name;
    const now = Date.now();
    const row: AppInstancesTable = {
      id: existing?.row.id ?? `a-${randomBytes(6).toString('hex')}`,
      name,
      project_id: project.id,
      extension: extensionName,
      version: ext.manifest.version,
      ext_dir: ext.dir,
      spec_json: JSON.stringify(spec),
      params_json: JSON.stringify(params),
      desired: 'running',
      state: 'starting',
      reason: null,
      runner,
      port: null,
      handle: null,
      created_at: existing?.row.created_at ?? now,
      started_at: null,
      updated_at: now,
      run_id: o.task?.runId ?? null,
      task_id: o.task?.taskId ?? null,
      completed_at: null,
      launched_by: o.launchedBy?.userId ?? null,
      launched_role: o.launchedBy?.role ?? null,
    };
    // Stored with the instance: never a credential (the instance gets its own at each start).
    const taskEnv = Object.fromEntries(Object.entries(o.task?.env ?? {}).filter(([k]) => k !== API_TOKEN_VAR));
    if (o.task) row.spec_json = JSON.stringify({ ...spec, env: { ...spec.env, ...taskEnv } });
    await this.#o.db.insertInto('app_instances').values(row).onConflict((oc) => oc.column('id').doUpdateSet(row)).execute();
    const live: Live = { row, target: { state: 'starting', port: null, ingress: spec.ingress ?? 'subpath', reason: null } };
    this.#live.set(key, live);
    this.#changed(live, project.name);
    void this.#run(live, project.name);
    return this.#json(live, project.name);
  }

  async list(o: { project?: string } = {}): Promise<AppInstance[]> {
    const out: AppInstance[] = [];
    for (const [key, live] of this.#live) {
      const project = key.slice(0, key.indexOf('/'));
      if (o.project && project !== o.project) continue;
      out.push(this.#json(live, project));
    }
    return out.sort((a, b) => a.project.localeCompare(b.project) || a.name.localeCompare(b.name));
  }

  async get(project: string, name: string): Promise<AppInstance> {
    return this.#json(this.#find(project, name), project);
  }

  async stop(project: string, name: string): Promise<AppInstance> {
    const live = this.#find(project, name);
    // The server stopping ends waiting tasks too: their instances are for the next start to resume.
    if (this.#closed) return this.#json(live, project);
    live.row.desired = 'stopped';
    live.stopping = true;
    await this.#o.db.updateTable('app_instances').set({ desired: 'stopped', updated_at: Date.now() }).where('id', '=', live.row.id).execute();
    if (live.stop) {
      live.stopping = true;
      await live.stop();
    }
    // Once stop() answers, the instance's token no longer works.
    await this.#revoke(live);
    await this.#set(live, 'stopped', null);
    return this.#json(live, project);
  }

  /** A person is done with an instance a workflow task launched: the task ends, the DAG goes on. */
  async complete(project: string, name: string): Promise<AppInstance> {
    const live = this.#find(project, name);
    if (!live.row.run_id) throw new TesseraError('TESSERA_CONFLICT', `${name} was not launched by a workflow; there is nothing to complete (stop it with tessera app stop ${name})`);
    if (!live.row.completed_at) {
      live.row.completed_at = Date.now();
      await this.#o.db.updateTable('app_instances').set({ completed_at: live.row.completed_at }).where('id', '=', live.row.id).execute();
    }
    this.#waiters.get(live.row.id)?.();
    this.#changed(live, project);
    return this.#json(live, project);
  }

  /** Resolves once the instance is marked complete; rejects when it fails or `signal` aborts. */
  async waitForCompletion(project: string, name: string, signal: AbortSignal): Promise<void> {
    const live = this.#find(project, name);
    if (live.row.completed_at) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearInterval(timer);
        this.#waiters.delete(live.row.id);
        signal.removeEventListener('abort', aborted);
        if (err) reject(err);
        else resolve();
      };
      const aborted = (): void => done(new Error('stopped while waiting for a person'));
      // A failed app fails the task; it does not wait for ever.
      const timer = setInterval(() => {
        if (live.target.state === 'failed') done(new Error(`the application failed: ${live.target.reason ?? ''}`));
        else if (live.target.state === 'stopped' && !live.row.completed_at) done(new Error('the application was stopped before the task was marked complete'));
      }, 500);
      this.#waiters.set(live.row.id, () => done());
      signal.addEventListener('abort', aborted, { once: true });
    });
  }

  /** The last `lines` lines of an instance's log. */
  async logs(project: string, name: string, lines = 200): Promise<string> {
    const live = this.#find(project, name);
    return tailFile(this.logFile(live.row.id), lines);
  }

  #find(project: string, name: string): Live {
    const live = this.#live.get(`${project}/${name}`);
    if (!live) throw new TesseraError('TESSERA_NOT_FOUND', `project ${project} has no application instance "${name}"; tessera app list shows them`);
    return live;
  }

  #json(live: Live, project: string): AppInstance {
    const r = live.row;
    return {
      id: r.id,
      name: r.name,
      project,
      extension: r.extension,
      version: r.version,
      state: live.target.state,
      reason: live.target.reason,
      runner: r.runner,
      params: JSON.parse(r.params_json) as Record<string, unknown>,
      url: `${this.#o.origin?.(project, r.name) ?? ''}${APP_PREFIX}${project}/release/${r.name}/`,
      created_at: new Date(r.created_at).toISOString(),
      started_at: r.started_at ? new Date(r.started_at).toISOString() : null,
      task: r.run_id && r.task_id ? { run: r.run_id, task: r.task_id, completed_at: r.completed_at ? new Date(r.completed_at).toISOString() : null } : null,
    };
  }

  async #set(live: Live, state: AppState, reason: string | null, patch: Partial<AppInstancesTable> = {}): Promise<void> {
    Object.assign(live.row, { state, reason, updated_at: Date.now(), ...patch });
    live.target.state = state;
    live.target.reason = reason;
    if (state !== 'running') live.target.port = state === 'starting' ? null : live.target.port;
    if (this.#closed) return;
    await this.#o.db.updateTable('app_instances').set({ state, reason, updated_at: live.row.updated_at, ...patch }).where('id', '=', live.row.id).execute();
    this.#changed(live);
  }

  #changed(live: Live, projectName?: string): void {
    if (!this.#o.changed) return;
    let project = projectName;
    for (const [key, l] of this.#live) if (project === undefined && l === live) project = key.slice(0, key.indexOf('/'));
    if (project === undefined) return;
    try {
      this.#o.changed(this.#json(live, project));
    } catch (err) {
      this.#o.log.warn(`could not announce the state of ${project}/${live.row.name}: ${(err as Error).message}`);
    }
  }

  /** Revokes the credential of what ran (once); a failure is logged: the token expires, and the next start revokes it. */
  #revoke(live: Live): Promise<void> {
    if (live.credentialed) {
      live.credentialed = false;
      live.revoked = this.#o.credentials!.revoke(live.row.id).catch((err: Error) => this.#o.log.warn(`could not revoke the API token of application instance ${live.row.id}: ${err.message}`));
    }
    // A second caller waits for the revocation under way.
    return live.revoked ?? Promise.resolve();
  }

  /**
   * Records that an instance failed. The state in memory says so whatever happens; when
   * the record cannot be written, the manager's log says so (there is nobody else to
   * tell: the launch has long returned).
   */
  async #fail(live: Live, reason: string): Promise<void> {
    try {
      await this.#set(live, 'failed', reason);
    } catch (err) {
      let project = '?';
      for (const [key, l] of this.#live) if (l === live) project = key.slice(0, key.indexOf('/'));
      const cause = err instanceof Error ? err.message : String(err);
      this.#o.log.error(`could not record that application ${project}/${live.row.name} (${live.row.id}) failed: ${cause}; it failed because ${reason}`);
    }
  }

  /** Starts the app on its runner, waits for its health check, and follows it until it ends. */
  async #run(live: Live, project: string, note?: string): Promise<void> {
    live.started = true;
    live.stopping = false;
    const spec = JSON.parse(live.row.spec_json) as AppSpecT;
    /** A stop that came while this was starting: what was started goes, and the launch ends here. */
    const stoppedMeanwhile = async (): Promise<boolean> => {
      if (live.row.desired !== 'stopped' && !this.#closed) return false;
      await live.stop?.();
      return true;
    };
    const prefix = `${APP_PREFIX}${project}/release/${live.row.name}`;
    const logFile = this.logFile(live.row.id);
    try {
      const port = await freePort();
      const secret = randomBytes(24).toString('base64url');
      // A fresh credential at each start; the instance's end revokes it.
      const credential = this.#o.credentials ? await this.#o.credentials.issue(live.row) : {};
      live.credentialed = Object.keys(credential).length > 0;
      const env: Record<string, string> = {
        ...spec.env,
        ...paramsEnv(JSON.parse(live.row.params_json) as Record<string, unknown>),
        ...this.#o.services(),
        ...credential,
        PORT: String(port),
        INGRESS_PATH: prefix,
        TESSERA_PROJECT: project,
        TESSERA_APP_ID: live.row.id,
        EXTENSION_DIR: live.row.ext_dir,
        // Every request the proxy forwards carries it (PROXY_SECRET_HEADER): the app can tell them from a local process's.
        TESSERA_PROXY_SECRET: secret,
      };
      // The folders a runner mounts come from the platform, never from a manifest's or an
      // operator's env: an env naming `/` as RESULTS_DIR would otherwise get `/` mounted.
      delete env.RESULTS_DIR;
      delete env.WORKFLOW_DIR;
      if (spec.mounts?.results) env.RESULTS_DIR = this.#o.resultsDir(live.row.project_id);
      if (live.row.run_id) env.WORKFLOW_DIR = this.#o.workflowDir(live.row.run_id);
      if (!existsSync(live.row.ext_dir)) throw new Error(`its extension folder ${live.row.ext_dir} is gone (was ${live.row.extension} uninstalled?)`);
      const runner = this.#o.runners.find((r) => r.name === live.row.runner);
      if (!runner) throw new Error(`it runs on the ${live.row.runner} runner, which this server does not have`);
      const handle: AppHandle = await runner.start({
        appId: live.row.id, spec, extDir: live.row.ext_dir, hostPort: port, env, logFile, instanceDir: dirname(logFile), ...(live.row.run_id ? { runId: live.row.run_id } : {}),
      });
      live.stop = () => runner.stop(handle);
      if (await stoppedMeanwhile()) return;
      await this.#set(live, 'starting', null, { port, handle: handle.id });
      let exited: { code: number | null; signal: string | null } | undefined;
      void handle.exited.then(async (e) => {
        exited = e;
        live.stop = undefined;
        await this.#revoke(live);
        this.#o.released?.(port);
        if (live.stopping || live.row.desired === 'stopped' || this.#closed) return;
        const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
        await this.#fail(live, `the application ${how}; its last lines:\n${await tailFile(logFile, 10)}`);
      });
      const timeoutMs = (spec.health?.timeout_s ?? 60) * 1000;
      const healthPath = (spec.ingress ?? 'subpath') === 'subpath' ? `${prefix}${spec.health?.path ?? '/'}` : (spec.health?.path ?? '/');
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (exited || live.stopping || (await stoppedMeanwhile())) return;
        const ok = await fetch(`http://127.0.0.1:${port}${healthPath}`, { redirect: 'manual', headers: { [PROXY_SECRET_HEADER]: secret }, signal: AbortSignal.timeout(2000) })
          .then((r) => {
            void r.body?.cancel();
            return r.status < 400;
          }, () => false);
        if (ok) break;
        if (Date.now() > deadline) {
          live.stopping = true;
          await live.stop?.();
          await this.#set(live, 'failed', `the application did not become healthy within ${timeoutMs / 1000} s (GET ${healthPath}); its last lines:\n${await tailFile(logFile, 10)}`);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      live.target.secret = secret;
      live.target.port = port;
      await this.#set(live, 'running', note ?? null, { started_at: Date.now() });
      this.#o.log.info(`application ${project}/${live.row.name} (${live.row.extension}) is running at ${prefix}/`);
    } catch (err) {
      // What was started keeps its credential until it ends; what never started needs none.
      if (!live.stop) await this.#revoke(live);
      await this.#fail(live, `could not start: ${(err as Error).message}`);
    }
  }
}

function ingressOf(row: AppInstancesTable): 'subpath' | 'strip' {
  return (JSON.parse(row.spec_json) as AppSpecT).ingress ?? 'subpath';
}
