import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hash, verify } from '@node-rs/argon2';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { DomainLog } from '../domain.ts';
import { newSecret, type AccessStore, type Credential, type User } from './access-store.ts';
import type { AuditLog } from './audit-log.ts';

/** Failed sign-ins allowed in a window, per user name and per client address. */
export const SIGN_IN_LIMITS = { windowMs: 15 * 60_000, perUser: 10, perAddress: 50 } as const;
/** A browser session lasts this long from sign-in. */
export const SESSION_HOURS = 12;
/** The console's sign-in link works once, for this long. */
export const LINK_MINUTES = 15;

/** The file the first start writes the initial admin password to (mode 0600), as Jenkins does. */
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

/** A hash to verify against when the user does not exist: an unknown name costs as long as a wrong password. */
let decoyHash: Promise<string> | undefined;

/** A password anyone can type: 24 characters from 18 random bytes. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

export function hashPassword(password: string): Promise<string> {
  return hash(password); // argon2id, the library's defaults (m=19456 KiB, t=2, p=1: OWASP's minimum)
}

/**
 * Signing in and the credentials it gives: password sign-in with rate limits, the
 * single-use console link, sessions, the initial admin and the runtime file.
 */
export class Identity {
  readonly #store: AccessStore;
  readonly #config: ServerConfig;
  readonly #audit: AuditLog;
  readonly #log: DomainLog;

  constructor(deps: { store: AccessStore; config: ServerConfig; audit: AuditLog; log: DomainLog }) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#audit = deps.audit;
    this.#log = deps.log;
  }

  /** Checks a name and password; answers the user, or throws 401 (which part was wrong is not said) or 429. */
  async checkPassword(username: string, password: string, address: string | undefined): Promise<User> {
    const keys = [`sign-in:user:${username.toLowerCase()}`, ...(address ? [`sign-in:address:${address}`] : [])];
    const limits = [SIGN_IN_LIMITS.perUser, SIGN_IN_LIMITS.perAddress];
    for (const [i, key] of keys.entries()) {
      const { count, resetAt } = await this.#store.eventCount(key, SIGN_IN_LIMITS.windowMs);
      if (count >= limits[i]!) {
        await this.#audit.append({ actor: null, action: 'sign-in-refused', target: username, outcome: 'refused', address, details: { reason: i === 0 ? 'too many failed sign-ins for this name' : 'too many failed sign-ins from this address' } });
        const seconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
        throw Object.assign(
          new TesseraError('TESSERA_TOO_MANY_REQUESTS', `too many failed sign-ins ${i === 0 ? `for "${username}"` : 'from your address'}: try again in ${Math.ceil(seconds / 60)} minute(s), or ask an admin to reset the password`),
          { retryAfterSeconds: seconds },
        );
      }
    }
    const user = await this.#store.userByName(username);
    const stored = user?.password_hash ?? (await (decoyHash ??= hashPassword(generatePassword())));
    const ok = (await verify(stored, password)) && user !== undefined && user.password_hash !== null && !user.disabled;
    if (!ok) {
      for (const key of keys) await this.#store.countEvent(key, SIGN_IN_LIMITS.windowMs);
      await this.#audit.append({ actor: null, action: 'sign-in-failed', target: username, outcome: 'refused', address, details: user?.disabled ? { reason: 'user disabled' } : null });
      throw new TesseraError('TESSERA_UNAUTHENTICATED', 'wrong user name or password');
    }
    await this.#store.clearEvents(keys[0]!);
    return user;
  }

  /** A new browser session for the user; answers its secret (the cookie's value). */
  async startSession(user: User, address: string | undefined, how: string): Promise<{ secret: string; maxAgeSeconds: number }> {
    const secret = newSecret('tss');
    await this.#store.insertCredential(secret, {
      kind: 'session', user_id: user.id, name: how, project_id: null, role: null, subject: null, expires_at: Date.now() + SESSION_HOURS * 3_600_000,
    });
    await this.#store.updateUser(user.id, { last_sign_in_at: Date.now() });
    await this.#audit.append({ actor: user.name, action: 'sign-in', target: how, outcome: 'ok', address });
    return { secret, maxAgeSeconds: SESSION_HOURS * 3600 };
  }

  /** A single-use sign-in link's code for a user, valid {@link LINK_MINUTES} minutes. */
  async createLink(user: User): Promise<string> {
    const code = newSecret('tsl');
    await this.#store.insertCredential(code, { kind: 'link', user_id: user.id, name: 'console sign-in link', project_id: null, role: null, subject: null, expires_at: Date.now() + LINK_MINUTES * 60_000 });
    return code;
  }

  /** Uses a link's code once; answers its user, or throws 401. */
  async redeemLink(code: string, address: string | undefined): Promise<User> {
    const key = address ? `sign-in:address:${address}` : undefined;
    if (key && (await this.#store.eventCount(key, SIGN_IN_LIMITS.windowMs)).count >= SIGN_IN_LIMITS.perAddress) {
      throw new TesseraError('TESSERA_TOO_MANY_REQUESTS', 'too many failed sign-ins from your address: try again later');
    }
    const credential = await this.#store.credentialFor(code);
    const user = credential?.kind === 'link' ? await this.#store.userById(credential.user_id) : undefined;
    if (!credential || credential.kind !== 'link' || !user || user.disabled) {
      if (key) await this.#store.countEvent(key, SIGN_IN_LIMITS.windowMs);
      await this.#audit.append({ actor: null, action: 'sign-in-failed', target: 'sign-in link', outcome: 'refused', address });
      throw new TesseraError('TESSERA_UNAUTHENTICATED', 'this sign-in link is unknown, used or expired (links work once, for 15 minutes): restart the server for a new one, or sign in with the password in $TESSERA_HOME/initial-admin-password');
    }
    await this.#store.revokeCredential(credential.id);
    return user;
  }

  /**
   * At the first start: an admin account named `admin` with a generated password, written
   * to `$TESSERA_HOME/initial-admin-password` (mode 0600, never logged), which must be
   * changed at first sign-in. Answers the admin when it was created now.
   */
  async ensureInitialAdmin(): Promise<User | undefined> {
    if ((await this.#store.userCount()) > 0) return undefined;
    const password = generatePassword();
    const user = await this.#store.insertUser({
      name: 'admin', display_name: 'Administrator', password_hash: await hashPassword(password), admin: 1, source: 'local',
      oidc_issuer: null, oidc_subject: null, disabled: 0, must_change_password: 1,
    });
    writePrivateFile(this.initialPasswordFile, `${password}\n`);
    await this.#audit.append({ actor: null, action: 'user-created', target: 'admin', outcome: 'ok', address: null, details: { initial: true } });
    return user;
  }

  get initialPasswordFile(): string {
    return join(this.#config.home, INITIAL_PASSWORD_FILE);
  }

  /** Once the initial admin chose a password, the file of the old one goes. */
  forgetInitialPassword(): void {
    rmSync(this.initialPasswordFile, { force: true });
  }

  /**
   * The runtime file of a loopback server: `<stateDir>/servers/<port>.json` (mode 0600)
   * with its URL and an admin token, for the CLI and local scripts, as Jupyter's runtime
   * files work. The token is revoked and the file removed at shutdown.
   */
  async writeRuntimeFile(port: number, url: string): Promise<{ file: string; remove: () => Promise<void> } | undefined> {
    const admin = await this.#store.firstAdmin();
    if (!admin) return undefined;
    await this.#store.revokeKind('runtime');
    const token = newSecret('tsr');
    const credential: Credential = await this.#store.insertCredential(token, { kind: 'runtime', user_id: admin.id, name: `runtime file of port ${port}`, project_id: null, role: null, subject: null, expires_at: null });
    const file = join(this.#config.stateDir, 'servers', `${port}.json`);
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writePrivateFile(file, `${JSON.stringify({ url, token, pid: process.pid, home: this.#config.home }, null, 2)}\n`);
    } catch (err) {
      this.#log.warn(`could not write the runtime file ${file} (${(err as Error).message}): the CLI on this machine needs TESSERA_TOKEN or \`tessera login\``);
      await this.#store.revokeCredential(credential.id);
      return undefined;
    }
    return {
      file,
      remove: async () => {
        rmSync(file, { force: true });
        await this.#store.revokeCredential(credential.id);
      },
    };
  }
}

/** Writes a file only its owner may read, atomically (a reader never sees half of it, nor a moment of wider mode). */
export function writePrivateFile(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
