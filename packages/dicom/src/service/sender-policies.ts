import type { Kysely } from '@tessera/db';
import { TesseraError, type ErrorDetail } from '@tessera/model';
import type { DicomTables } from '../store/dicom-tables.ts';
import { parseSenderNetwork, SenderMatcher, type SenderNetwork } from './sender-address.ts';

/** At most this many entries per project: an allowlist names sites and networks, not every host of a hospital. */
export const MAX_ALLOWED_SENDERS = 1000;
/** The longest note of an entry. */
export const MAX_SENDER_NOTE = 200;

export interface AllowedSender {
  /** Canonical: `10.0.0.0/8`, `10.1.2.3`, `fd00::/8`, `::1`. */
  address: string;
  note: string | null;
}

/** A project's sender policy as stored. */
export interface SenderPolicy {
  refuseUnknown: boolean;
  allowed: AllowedSender[];
  /** Epoch ms of the last change; undefined when the project never had a policy. */
  updatedAt: number | undefined;
}

/** What an association's peer address meets. */
export type SenderVerdict =
  | { allowed: true; by: string | undefined }
  | { allowed: false; why: string };

interface Compiled {
  policy: SenderPolicy;
  matcher: SenderMatcher;
}

/**
 * Per-project C-STORE sender allowlists: stored in the DICOM domain's tables, and kept
 * whole in memory so that an association is decided without a database read. The copy
 * is loaded at start and replaced entry by entry as `set` commits; this process is the
 * only writer (one server per home).
 */
export class SenderPolicies {
  readonly #db: Kysely<DicomTables>;
  readonly #refuseUnknownEverywhere: boolean;
  readonly #byProject = new Map<string, Compiled>();

  constructor(db: Kysely<DicomTables>, options: { refuseUnknownEverywhere: boolean }) {
    this.#db = db;
    this.#refuseUnknownEverywhere = options.refuseUnknownEverywhere;
  }

  /** TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS: every project refuses an address it does not list. */
  get refuseUnknownEverywhere(): boolean {
    return this.#refuseUnknownEverywhere;
  }

  /** Loads every project's policy into memory. */
  async load(): Promise<void> {
    const policies = await this.#db.selectFrom('dicom_sender_policies').selectAll().execute();
    const entries = await this.#db.selectFrom('dicom_allowed_senders').selectAll().orderBy('project_id').orderBy('position').execute();
    this.#byProject.clear();
    for (const p of policies) {
      const allowed = entries.filter((e) => e.project_id === p.project_id).map((e) => ({ address: e.address, note: e.note }));
      this.#remember(p.project_id, { refuseUnknown: Number(p.refuse_unknown) === 1, allowed, updatedAt: Number(p.updated_at) });
    }
  }

  /** The project's policy (an empty list, unknown senders accepted, when it never had one). */
  get(projectId: string): SenderPolicy {
    return this.#byProject.get(projectId)?.policy ?? { refuseUnknown: false, allowed: [], updatedAt: undefined };
  }

  /** Whether the project refuses an address it does not list: a non-empty list, its own setting, or the global one. */
  enforced(projectId: string): boolean {
    const c = this.#byProject.get(projectId);
    return this.#refuseUnknownEverywhere || (c !== undefined && (c.policy.refuseUnknown || c.matcher.size > 0));
  }

  /** Decides on an association's peer address for a project: memory only, once per association. */
  check(projectId: string, remoteAddress: string): SenderVerdict {
    const c = this.#byProject.get(projectId);
    const listed = c?.matcher.match(remoteAddress);
    if (listed !== undefined) return { allowed: true, by: listed };
    if (!this.enforced(projectId)) return { allowed: true, by: undefined };
    const because =
      c && c.matcher.size > 0
        ? `it is not in the project's ${c.matcher.size} allowed sender address(es)`
        : c?.policy.refuseUnknown
          ? 'the project refuses unknown senders and allows no address yet'
          : 'TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1 refuses unknown senders and the project allows no address yet';
    return { allowed: false, why: because };
  }

  /**
   * Replaces a project's policy after checking every entry: each a valid IPv4 or IPv6
   * address or CIDR network, none listed twice, notes not too long. A bad entry is a 400
   * naming it (`allowed[2].address`) and nothing changes.
   */
  async set(projectId: string, input: { refuseUnknown: boolean; allowed: readonly { address: string; note?: string | null }[] }): Promise<SenderPolicy> {
    const { networks, problems } = checkAllowedSenders(input.allowed);
    if (problems.length > 0) {
      const first = problems[0]!;
      throw new TesseraError(
        'TESSERA_INVALID_REQUEST',
        `${problems.length === 1 ? 'an allowed sender is' : `${problems.length} allowed senders are`} not valid, first ${first.where}: ${first.message}. ` +
          'Each entry is an IPv4 or IPv6 address (10.1.2.3, ::1) or a network in CIDR notation (10.1.0.0/16, fd00::/8); nothing was changed',
        { details: problems },
      );
    }
    const allowed = networks.map((n, i) => ({ address: n.canonical, note: input.allowed[i]!.note?.trim() || null }));
    const now = Date.now();
    await this.#db.transaction().execute(async (tx) => {
      await tx.deleteFrom('dicom_allowed_senders').where('project_id', '=', projectId).execute();
      await tx.deleteFrom('dicom_sender_policies').where('project_id', '=', projectId).execute();
      await tx.insertInto('dicom_sender_policies').values({ project_id: projectId, refuse_unknown: input.refuseUnknown ? 1 : 0, updated_at: now }).execute();
      // In chunks: SQLite takes at most 32,766 bound values per statement.
      for (let i = 0; i < allowed.length; i += 500) {
        const rows = allowed.slice(i, i + 500).map((a, k) => ({ project_id: projectId, position: i + k, address: a.address, note: a.note }));
        await tx.insertInto('dicom_allowed_senders').values(rows).execute();
      }
    });
    // Only after the commit: an association never meets a policy the database does not hold.
    const policy: SenderPolicy = { refuseUnknown: input.refuseUnknown, allowed, updatedAt: now };
    this.#remember(projectId, policy, networks);
    return policy;
  }

  #remember(projectId: string, policy: SenderPolicy, networks?: SenderNetwork[]): void {
    const nets = networks ?? policy.allowed.map((a) => parseSenderNetwork(a.address)).flatMap((p) => (p.ok ? [p.network] : []));
    this.#byProject.set(projectId, { policy, matcher: new SenderMatcher(nets) });
  }
}

/** Parses a list of entries; a problem per bad entry, with where it is (`allowed[i].address`). */
export function checkAllowedSenders(entries: readonly { address: string; note?: string | null }[]): { networks: SenderNetwork[]; problems: ErrorDetail[] } {
  const networks: SenderNetwork[] = [];
  const problems: ErrorDetail[] = [];
  if (entries.length > MAX_ALLOWED_SENDERS) problems.push({ where: 'allowed', message: `${entries.length} entries are more than the ${MAX_ALLOWED_SENDERS} allowed: list networks (10.1.0.0/16) rather than single hosts` });
  const seen = new Map<string, number>();
  entries.forEach((e, i) => {
    const where = `allowed[${i}]`;
    const parsed = parseSenderNetwork(e.address);
    if (!parsed.ok) {
      problems.push({ where: `${where}.address`, message: `"${e.address.slice(0, 100)}" is not valid: ${parsed.problem}` });
      return;
    }
    const earlier = seen.get(parsed.network.canonical);
    if (earlier !== undefined) problems.push({ where: `${where}.address`, message: `"${e.address}" is ${parsed.network.canonical}, listed already as allowed[${earlier}]` });
    else seen.set(parsed.network.canonical, i);
    if ((e.note?.length ?? 0) > MAX_SENDER_NOTE) problems.push({ where: `${where}.note`, message: `the note has ${e.note!.length} characters, more than ${MAX_SENDER_NOTE}` });
    networks.push(parsed.network);
  });
  return { networks, problems };
}
