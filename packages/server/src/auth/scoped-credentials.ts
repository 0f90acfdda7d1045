import type { ProjectRole } from '@tessera/api';
import { API_TOKEN_VAR, type AppCredentials, type AppInstancesTable } from '@tessera/apps';
import type { RunRow, TaskCredentials, TaskLaunch } from '@tessera/engine';
import { TesseraError } from '@tessera/model';
import type { AccessControl } from './access-control.ts';
import { NO_USER, scopedRole, scopedUserId } from './access-control.ts';
import { newSecret, type AccessStore, type CredentialKind } from './access-store.ts';
import { roleIn, roleSatisfies } from './principal.ts';

/** A task try's or an application instance's token lasts at most this long (a try or an app that runs longer loses API access). */
export const SCOPED_TOKEN_HOURS = 24;

/**
 * The scoped credentials of what runs on behalf of a user: each try of a task that runs
 * outside the server (a process, a container) and each start of an application instance
 * gets a token of its own, `TESSERA_API_TOKEN`, that acts only in the run's (instance's)
 * project, with at most the role its starter (launcher) had there when they started it,
 * never as an admin; it is revoked when the try, the run or the instance ends, and at a
 * start for whatever ended while the server was down. Only a SHA-256 of each token is
 * stored; tokens are never logged. With access control off there are none.
 *
 * Built-in operators run inside the server: they get no token, and check the same rights
 * here ({@link requireRunRole}) before they act on data.
 */
export class ScopedCredentials {
  readonly #store: AccessStore;
  readonly #control: AccessControl;
  /** Credential ids of running tries, by try key: revoked by id when the try ends. */
  readonly #tries = new Map<string, { id: string; runId: string }>();

  constructor(deps: { store: AccessStore; control: AccessControl }) {
    this.#store = deps.store;
    this.#control = deps.control;
  }

  /** For the scheduler: a token per try, in the run's project with its starter's role. */
  readonly runs: TaskCredentials = {
    issue: async (run: RunRow, tryKey: string): Promise<Record<string, string>> => {
      const issued = await this.#issue('run', { userId: run.started_by, role: run.started_role, projectId: run.project_id, subject: run.id, name: tryKey });
      if (!issued) return {};
      this.#tries.set(tryKey, { id: issued.id, runId: run.id });
      return { [API_TOKEN_VAR]: issued.secret };
    },
    revokeTry: async (tryKey: string) => {
      const t = this.#tries.get(tryKey);
      if (!t) return;
      this.#tries.delete(tryKey);
      await this.#store.revokeCredential(t.id);
      this.#control.invalidate();
    },
    revokeRun: async (runId: string) => {
      if (!this.#control.enabled) return;
      for (const [key, t] of this.#tries) if (t.runId === runId) this.#tries.delete(key);
      await this.#store.revokeSubject(runId);
      this.#control.invalidate();
    },
    retain: async (tryKeys: ReadonlySet<string>) => {
      // Also with access control off: tokens of an earlier start with it on must not outlive their tries.
      await this.#store.revokeKindExcept('run', tryKeys);
      this.#control.invalidate();
    },
  };

  /** For the application manager: a token per start of an instance, in its project with its launcher's role. */
  readonly apps: AppCredentials = {
    issue: async (instance: AppInstancesTable): Promise<Record<string, string>> => {
      const issued = await this.#issue('application', {
        userId: instance.launched_by, role: instance.launched_role, projectId: instance.project_id, subject: instance.id, name: `application instance ${instance.id}`,
      });
      return issued ? { [API_TOKEN_VAR]: issued.secret } : {};
    },
    revoke: async (instanceId: string) => {
      await this.#store.revokeSubject(instanceId);
      this.#control.invalidate();
    },
    revokeAll: async () => {
      await this.#store.revokeKind('application');
      this.#control.invalidate();
    },
  };

  async #issue(
    kind: Extract<CredentialKind, 'run' | 'application'>,
    o: { userId: string | null; role: string | null; projectId: string; subject: string; name: string },
  ): Promise<{ id: string; secret: string } | undefined> {
    if (!this.#control.enabled) return undefined;
    const secret = newSecret(kind === 'run' ? 'tsk' : 'tsa');
    const row = await this.#store.insertCredential(secret, {
      kind, user_id: scopedUserId(o.userId), name: o.name, project_id: o.projectId, role: scopedRole(o.role), subject: o.subject,
      expires_at: Date.now() + SCOPED_TOKEN_HOURS * 3_600_000,
    });
    return { id: row.id, secret };
  }

  /** The role a run acts with in its project now (undefined: none, its starter is gone, disabled or no longer a member). */
  async runRole(launch: TaskLaunch): Promise<ProjectRole | undefined> {
    const s = launch.startedBy;
    if (!s) return this.#control.enabled ? 'scientist' : 'principal-investigator';
    const principal = await this.#control.actingPrincipal({ via: 'run', projectId: s.projectId, userId: s.userId, role: s.role, subject: launch.runId });
    return principal ? roleIn(principal, s.projectId) : undefined;
  }

  /**
   * Throws unless the run may do `what` in its project: a built-in operator acts with the
   * rights of the run's starter, as a task's token does over HTTP.
   */
  async requireRunRole(launch: TaskLaunch, needed: ProjectRole, what: string, projectName: string): Promise<void> {
    const role = await this.runRole(launch);
    const s = launch.startedBy;
    const user = s?.userId && s.userId !== 'local' ? `"${s.userName ?? s.userId}"` : undefined;
    if (!role) {
      throw new TesseraError('TESSERA_FORBIDDEN', `this run acts with the rights of ${user ?? 'its starter'}, who is no longer a member of project "${projectName}" (or was disabled or deleted): it may not ${what}`);
    }
    if (!roleSatisfies(role, needed)) {
      const as = user ? `acts with the rights of ${user}, who started it, as a ${role} of project "${projectName}"` : `was started by no user (an ${NO_USER.name}) and acts as a ${role} of project "${projectName}"`;
      throw new TesseraError('TESSERA_FORBIDDEN', `this run ${as}; to ${what} takes a ${roleName(needed)} of the project: ask one of them to start it`);
    }
  }
}

function roleName(role: ProjectRole): string {
  return role === 'principal-investigator' ? 'principal investigator' : role;
}
