import { randomBytes } from 'node:crypto';
import type { AnswerOf, authRoutes, CreatedToken, CreateToken, CreateUser, Member, UpdateUser, User } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import type { Answers } from '../answers.ts';
import { canAsk, confirm, type Prompt } from '../confirm.ts';
import { printJson, table, truncate } from '../output.ts';
import { pageFooter } from './series-command.ts';

/** API tokens, users, project members and the audit log: `tessera token|users|projects members|audit`. */

const userPath = (name: string): string => `/api/users/${encodeURIComponent(name)}`;
const memberPath = (project: string, user: string): string => `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(user)}`;

/** `tessera token create <name>`: the token alone on stdout (for `$(tessera token create x)`), what it is on stderr. */
export async function tokenCreateCommand(api: ApiClient, name: string, o: { expiresInDays?: number; json?: boolean }): Promise<number> {
  const t = await api.post<CreatedToken>('/api/tokens', { name, ...(o.expiresInDays !== undefined ? { expires_in_days: o.expiresInDays } : {}) } satisfies CreateToken);
  if (o.json) {
    printJson(t);
    return 0;
  }
  process.stdout.write(`${t.token}\n`);
  console.error(
    `created the API token "${t.name}" (id ${t.id}) of ${t.user}${t.expires_at ? `, valid until ${t.expires_at}` : ''}. It is shown this once: ` +
      'keep it where only you can read it, and send it as `Authorization: Bearer <token>` or set TESSERA_TOKEN',
  );
  return 0;
}

export async function tokenListCommand(api: ApiClient, o: { all?: boolean; json?: boolean }): Promise<number> {
  const page = await api.get<AnswerOf<typeof authRoutes.listTokens, 200>>('/api/tokens', { all: o.all ? true : undefined, limit: 1000 });
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(table(['ID', 'NAME', 'USER', 'PREFIX', 'CREATED', 'EXPIRES', 'LAST USED'], page.items.map((t) => [
    t.id, truncate(t.name, 40), t.user, `${t.prefix}…`, t.created_at, t.expires_at ?? 'never', t.last_used_at,
  ])));
  shownOf(page.total, page.items.length, 'tokens');
  return 0;
}

export async function tokenRevokeCommand(api: ApiClient, id: string): Promise<number> {
  await api.empty('DELETE', `/api/tokens/${encodeURIComponent(id)}`);
  console.log(`revoked the token ${id}`);
  return 0;
}

/** The footer of a list without paging options: nothing, or how many of how many are shown. */
function shownOf(total: number, shown: number, what: string): void {
  if (total === 0) console.error(`(no ${what})`);
  else if (total > shown) console.error(`(the first ${shown} of ${total} ${what})`);
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');
const stateOf = (u: User): string => (u.disabled ? 'disabled' : u.must_change_password ? 'must change password' : 'active');

export async function usersListCommand(api: ApiClient, o: { json?: boolean }): Promise<number> {
  const page = await api.get<AnswerOf<typeof authRoutes.listUsers, 200>>('/api/users');
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(table(['NAME', 'ADMIN', 'STATE', 'SOURCE', 'LAST SIGN-IN', 'DISPLAY NAME'], page.items.map((u) => [
    u.name, yesNo(u.admin), stateOf(u), u.source, u.last_sign_in_at, u.display_name,
  ])));
  shownOf(page.total, page.items.length, 'users');
  return 0;
}

/** A password from stdin (`--password-stdin`): its first line, or asked without echo on a terminal. */
async function passwordFromStdin(answers: Answers, user: string): Promise<string> {
  const pw = await answers.secret(`password for ${user}: `, 'the password');
  if ([...pw].length < 12) throw new CliError('the password is shorter than 12 characters', { exitCode: 2 });
  return pw;
}

/** A password anyone can type: 24 characters from 18 random bytes (as the server makes them). */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** Prints a password set for someone else: alone on stdout (for scripts), what to do with it on stderr. */
function printPassword(password: string, user: string): void {
  process.stdout.write(`${password}\n`);
  console.error(`the password of ${user} is shown this once: give it to them; they must change it at their first sign-in (the UI asks, or \`tessera login\`)`);
}

/** `tessera users create <name>`: with a generated password printed once, or one read with --password-stdin. */
export async function usersCreateCommand(api: ApiClient, name: string, o: { admin?: boolean; displayName?: string; passwordStdin?: boolean; json?: boolean }, answers: Answers): Promise<number> {
  const password = o.passwordStdin ? await passwordFromStdin(answers, name) : undefined;
  const created = await api.post<AnswerOf<typeof authRoutes.createUser, 201>>('/api/users', {
    name,
    ...(o.displayName !== undefined ? { display_name: o.displayName } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(o.admin ? { admin: true } : {}),
  } satisfies CreateUser);
  if (o.json) {
    printJson(created);
    return 0;
  }
  const what = `created ${created.user.admin ? 'the admin' : 'the user'} ${created.user.name}`;
  if (created.password !== null) {
    console.error(`${what}.`);
    printPassword(created.password, created.user.name);
  } else {
    console.log(`${what}; they must change the password at their first sign-in`);
  }
  return 0;
}

export async function usersUpdateCommand(api: ApiClient, name: string, change: 'disable' | 'enable'): Promise<number> {
  const u = await api.patch<User>(userPath(name), { disabled: change === 'disable' } satisfies UpdateUser);
  console.log(u.disabled ? `${u.name}: disabled; their sessions and tokens stop working` : `${u.name}: enabled`);
  return 0;
}

/** `tessera users reset-password <name>`: a new password (generated and printed once, or --password-stdin) they must change. */
export async function usersResetPasswordCommand(api: ApiClient, name: string, o: { passwordStdin?: boolean }, answers: Answers): Promise<number> {
  const password = o.passwordStdin ? await passwordFromStdin(answers, name) : generatePassword();
  const u = await api.patch<User>(userPath(name), { password } satisfies UpdateUser);
  if (o.passwordStdin) console.log(`${u.name}: password set; they must change it at their next sign-in, and their browser sessions are signed out`);
  else {
    console.error(`${u.name}: password reset; their browser sessions are signed out.`);
    printPassword(password, u.name);
  }
  return 0;
}

/** `tessera users delete <name>`: asks first on a terminal; --yes is needed without one. */
export async function usersDeleteCommand(api: ApiClient, name: string, o: { yes?: boolean }, prompt?: Prompt): Promise<number> {
  if (!o.yes) {
    if (!canAsk(prompt)) throw new CliError(`refusing to delete the user ${name} without confirmation: there is no terminal to ask on. Add --yes to delete them.`, { exitCode: 2 });
    console.error(`Deleting ${name} deletes their sessions, tokens and project memberships (their runs and data stay in their projects); it cannot be undone.`);
    if (!(await confirm(`Delete the user ${name}?`, prompt))) {
      console.error('nothing deleted');
      return 1;
    }
  }
  await api.empty('DELETE', userPath(name));
  console.log(`deleted the user ${name}`);
  return 0;
}

export async function membersListCommand(api: ApiClient, project: string, o: { json?: boolean }): Promise<number> {
  const page = await api.get<AnswerOf<typeof authRoutes.listMembers, 200>>(`/api/projects/${encodeURIComponent(project)}/members`);
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(table(['USER', 'ROLE', 'ADDED', 'DISPLAY NAME'], page.items.map((m) => [m.user, m.role, m.added_at, m.display_name])));
  return 0;
}

export async function membersAddCommand(api: ApiClient, project: string, user: string, o: { role: Member['role']; json?: boolean }): Promise<number> {
  const m = await api.put<Member>(memberPath(project, user), { role: o.role });
  if (o.json) {
    printJson(m);
    return 0;
  }
  console.log(`${m.user} is a ${m.role} of project ${project}`);
  return 0;
}

export async function membersRemoveCommand(api: ApiClient, project: string, user: string): Promise<number> {
  await api.empty('DELETE', memberPath(project, user));
  console.log(`removed ${user} from project ${project}`);
  return 0;
}

export async function auditCommand(api: ApiClient, o: { actor?: string; action?: string; project?: string; limit: number; offset: number; json?: boolean }): Promise<number> {
  const page = await api.get<AnswerOf<typeof authRoutes.audit, 200>>('/api/audit', { actor: o.actor, action: o.action, project: o.project, limit: o.limit, offset: o.offset });
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(table(['AT', 'ACTOR', 'ACTION', 'OUTCOME', 'PROJECT', 'TARGET', 'ADDRESS'], page.items.map((e) => [
    e.at, e.actor, e.action, e.outcome, e.project, truncate(e.target, 50), e.address,
  ])));
  pageFooter(page.total, o.offset, page.items.length, 'entries');
  return 0;
}
