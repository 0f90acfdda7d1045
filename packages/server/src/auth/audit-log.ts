import type { FastifyInstance } from 'fastify';
import type { DomainLog } from '../domain.ts';
import type { ContractConfig } from '../http/serve-route.ts';
import type { AccessStore } from './access-store.ts';

export interface AuditInput {
  actor: string | null;
  action: string;
  project?: string | null;
  target?: string | null;
  outcome: 'ok' | 'refused';
  address?: string | null;
  details?: Record<string, unknown> | null;
}

/** What an operation is called in the audit log (the operationId when not listed). */
const ACTIONS: Record<string, string> = {
  triggerJob: 'run-triggered',
  cancelJob: 'job-canceled',
  cancelRun: 'run-canceled',
  retryRun: 'run-retried',
  importDicom: 'data-uploaded',
  deleteSeries: 'data-deleted',
  deleteSeriesList: 'data-deleted',
  deleteDataset: 'dataset-deleted',
  removeDatasetSeries: 'dataset-series-removed',
  uploadExtensionPackage: 'extension-uploaded',
  installExtension: 'extension-installed',
  uninstallExtension: 'extension-uninstalled',
  deleteExtensionVersion: 'extension-package-deleted',
  createProject: 'project-created',
  setMember: 'member-set',
  removeMember: 'member-removed',
  createToken: 'token-created',
  revokeToken: 'token-revoked',
  createUser: 'user-created',
  updateUser: 'user-updated',
  deleteUser: 'user-deleted',
  changePassword: 'password-changed',
  launchApplication: 'application-launched',
  stopApplication: 'application-stopped',
};

/** Operations that write their own entries (with the failures too). */
const SELF_AUDITED = new Set(['signIn', 'signInWithLink', 'oidcCallback', 'oidcStart', 'authProviders']);

/**
 * The audit log: who did what and when. Every state-changing API request that
 * succeeded, or was refused for want of rights, is written here from its route's
 * contract (one hook, no handler writes it itself); sign-ins write their own entries,
 * failed ones included. Secrets never go in: the details are names and ids.
 */
export class AuditLog {
  readonly #store: AccessStore;
  readonly #log: DomainLog;

  constructor(store: AccessStore, log: DomainLog) {
    this.#store = store;
    this.#log = log;
  }

  async append(e: AuditInput): Promise<void> {
    try {
      await this.#store.appendAudit({
        at: Date.now(), actor: e.actor, action: e.action, project: e.project ?? null, target: e.target ?? null, outcome: e.outcome,
        address: e.address ?? null, details: e.details ? JSON.stringify(e.details) : null,
      });
    } catch (err) {
      // The request it records has happened: a failed write is logged, not turned into an error answer.
      this.#log.error(`could not write the audit log entry ${e.action} by ${e.actor ?? 'anonymous'}: ${(err as Error).message}`);
    }
  }

  install(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      const contract = (request.routeOptions.config as ContractConfig | undefined)?.contract;
      if (!contract || contract.method === 'GET' || SELF_AUDITED.has(contract.operationId)) return;
      const status = reply.statusCode;
      const refused = status === 401 || status === 403;
      if (!refused && (status < 200 || status >= 300)) return;
      const params = (request.params ?? {}) as Record<string, unknown>;
      const body = (request.body && typeof request.body === 'object' ? request.body : {}) as Record<string, unknown>;
      const query = (request.query ?? {}) as Record<string, unknown>;
      const target = [params.id, params.name, params.uid, params.user, params.version, body.workflow, body.name]
        .filter((v): v is string => typeof v === 'string')
        .join(' ') || null;
      const project = request.access?.project?.name ?? (typeof body.project === 'string' ? body.project : typeof query.project === 'string' ? query.project : null);
      await this.append({
        actor: request.access?.principal?.user.name ?? null,
        action: ACTIONS[contract.operationId] ?? (contract.operationId.startsWith('store') ? 'data-uploaded' : contract.operationId),
        project,
        target,
        outcome: refused ? 'refused' : 'ok',
        address: request.ip,
        // A scoped token's entry names what used it: the run, the application instance.
        details: { status, via: request.access?.principal?.via ?? 'anonymous', ...(request.access?.principal?.scope ? { subject: request.access.principal.scope.subject } : {}) },
      });
    });
  }
}
