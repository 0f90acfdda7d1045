import { hostname } from 'node:os';
import type { AuthProviders, ChangePassword, CreatedToken, CreateToken, Me, SignIn } from '@tessera/api';
import { CliError, SESSION_COOKIE, type ApiClient } from '../api-client.ts';
import type { Answers } from '../answers.ts';
import { credentialsFile, describeSource, forgetLogin, saveLogin, savedLogin } from '../credentials.ts';
import { printJson, table } from '../output.ts';

/** The server's minimum length of a password (packages/api/src/auth.ts, ChangePassword). */
const MIN_PASSWORD = 12;

/** The session cookie a sign-in answer sets, as `name=value` (`__Host-tessera_session` over https). */
function sessionOf(res: Response): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const m = new RegExp(`^((?:__Host-)?${SESSION_COOKIE}=[^;]+)`).exec(c);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Asks for a new password: twice on a terminal (they must match), once (the next line)
 * from stdin. Checks what the server would refuse before asking it.
 */
async function newPassword(answers: Answers, current: string): Promise<string> {
  const pw = await answers.secret(`new password (${MIN_PASSWORD} characters at least): `, 'the new password');
  if (answers.interactive && (await answers.secret('new password again: ', 'the new password again')) !== pw) {
    throw new CliError('the two new passwords differ: nothing changed', { exitCode: 2 });
  }
  if ([...pw].length < MIN_PASSWORD) throw new CliError(`the new password is shorter than ${MIN_PASSWORD} characters: nothing changed`, { exitCode: 2 });
  if (pw === current) throw new CliError('the new password is the current one: choose another', { exitCode: 2 });
  return pw;
}

/**
 * `tessera login [url]`: signs in with a name and password (asked on the terminal, or
 * read from stdin), changes the password first when it must be, creates an API token
 * "cli on <hostname>" with the session, saves it for the URL in the credentials file
 * (mode 0600), and signs the session out. A token saved before for that URL is revoked.
 */
export async function loginCommand(anonymous: ApiClient, o: { username?: string }, answers: Answers): Promise<number> {
  const url = anonymous.baseUrl;
  const providers = await anonymous.get<AuthProviders>('/api/auth/providers');
  if (providers.auth === 'off') {
    console.error(`${url} runs with TESSERA_AUTH=off: it lets every request in, there is nothing to sign in to`);
    return 0;
  }
  const username = (o.username ?? (await answers.line('user name: ', 'the user name'))).trim();
  if (!username) throw new CliError('no user name given', { exitCode: 2 });
  const password = await answers.secret(`password for ${username}: `, 'the password');
  const res = await anonymous.send('POST', '/api/auth/sign-in', {}, { json: { username, password } satisfies SignIn });
  if (!res.ok) {
    await anonymous.fail(res, 'POST', '/api/auth/sign-in').catch((err: unknown) => {
      if (err instanceof CliError && err.status === 401 && providers.oidc) {
        throw new CliError(`${err.message}. A user of ${providers.oidc.name} signs in there, with no password here: sign in in the UI, and give the CLI an API token of yours in TESSERA_TOKEN`, { code: err.code, status: err.status });
      }
      throw err;
    });
  }
  const me = (await res.json()) as Me;
  const cookie = sessionOf(res);
  if (!cookie) throw new CliError(`${url} signed ${username} in but set no session cookie: is it a Tessera server?`);
  const session = anonymous.with({ session: cookie });
  try {
    if (me.user.must_change_password) {
      console.error(`The password of ${me.user.name} was set by someone else: choose your own.`);
      const next = await newPassword(answers, password);
      await session.empty('POST', '/api/auth/password', { current_password: password, new_password: next } satisfies ChangePassword);
      console.error('password changed');
    }
    const name = `cli on ${hostname()}`;
    const created = await session.post<CreatedToken>('/api/tokens', { name } satisfies CreateToken);
    const before = savedLogin(url);
    const file = saveLogin(url, { token: created.token, token_id: created.id, token_name: created.name, user: created.user, saved_at: new Date().toISOString() });
    // The token saved before for this server goes (when it is this user's: another's is not found, and stays).
    if (before && before.token_id !== created.id) await session.empty('DELETE', `/api/tokens/${encodeURIComponent(before.token_id)}`).catch(() => undefined);
    console.log(`signed in to ${url} as ${me.user.name}${me.user.admin ? ' (admin)' : ''}; saved the API token "${created.name}" in ${file}`);
    if (process.env.TESSERA_TOKEN?.trim()) console.error('note: TESSERA_TOKEN is set, and the CLI uses it before this login: unset it to use the login');
    return 0;
  } finally {
    await session.empty('POST', '/api/auth/sign-out').catch(() => undefined);
  }
}

/** `tessera logout [url]`: revokes the token `tessera login` saved for the URL, and forgets it. */
export async function logoutCommand(anonymous: ApiClient): Promise<number> {
  const url = anonymous.baseUrl;
  const saved = savedLogin(url);
  if (!saved) {
    console.error(`no login saved for ${url} (in ${credentialsFile()}): nothing to do`);
    return 0;
  }
  const client = anonymous.with({ token: saved.token, from: 'login', file: credentialsFile() });
  let note = `revoked the token "${saved.token_name}" of ${saved.user} and forgot it`;
  try {
    await client.empty('DELETE', `/api/tokens/${encodeURIComponent(saved.token_id)}`);
  } catch (err) {
    // Refused (revoked, expired) or not found: it does not work any more; forget it all the same.
    if (!(err instanceof CliError && (err.status === 401 || err.status === 404))) throw err;
    note = `forgot the token "${saved.token_name}" of ${saved.user} (the server no longer knew it)`;
  }
  forgetLogin(url);
  console.log(`signed out of ${url}: ${note}`);
  return 0;
}

/** `tessera whoami`: the user, admin or not, their projects with roles, and where the CLI's token came from. */
export async function whoamiCommand(api: ApiClient, o: { json?: boolean }): Promise<number> {
  const me = await api.get<Me>('/api/auth/me');
  const c = api.credential && !('session' in api.credential) ? api.credential : undefined;
  if (o.json) {
    printJson({ ...me, server: api.baseUrl, token_from: c?.from ?? null, token_file: c?.file ?? null });
    return 0;
  }
  const u = me.user;
  console.log(`server    ${api.baseUrl}${me.auth === 'off' ? ' (TESSERA_AUTH=off: no sign-in, every request acts as an admin)' : ''}`);
  console.log(`user      ${u.name}${u.display_name ? ` (${u.display_name})` : ''}`);
  console.log(`admin     ${u.admin ? 'yes' : 'no'}`);
  if (me.auth === 'on') console.log(`token     ${c ? `from ${describeSource(c)}` : 'none'}`);
  if (u.must_change_password) console.log('password  set by someone else: change it with `tessera password`');
  if (me.projects.length === 0) console.log('projects  none: a principal investigator of a project, or an admin, adds you to one');
  else console.log(`\n${table(['PROJECT', 'ROLE'], me.projects.map((p) => [p.project, p.role]))}`);
  return 0;
}

/** `tessera password`: changes the signed-in user's own password (asks the current one and a new one). */
export async function passwordCommand(api: ApiClient, answers: Answers): Promise<number> {
  const me = await api.get<Me>('/api/auth/me');
  if (me.auth === 'off') throw new CliError(`${api.baseUrl} runs with TESSERA_AUTH=off: there are no passwords`);
  if (me.user.source !== 'local') throw new CliError(`${me.user.name} signs in at the OpenID Connect issuer: change the password there`);
  const current = await answers.secret(`current password for ${me.user.name}: `, 'the current password');
  const next = await newPassword(answers, current);
  await api.empty('POST', '/api/auth/password', { current_password: current, new_password: next } satisfies ChangePassword);
  console.log(`changed the password of ${me.user.name}; their other browser sessions are signed out`);
  return 0;
}
