// Pure helpers of signing in and of the user's projects (tested in access.test.ts).
import type { Membership } from './api.ts';

/** Paths the server answers itself, never with the UI (as packages/server/src/web-ui.ts has them): a full page load goes there. */
const SERVER_PATHS = /^\/(api|dicom-web)(\/|$)|^\/applications\/project(\/|$)|^\/projects\/[^/]+\/dicom-web(\/|$)/;

/**
 * Where to go after signing in: `next` when it is a path of this server (it starts with
 * "/" but not "//", and has no backslash or control character, which browsers may read as
 * another host), else "/". Never the sign-in page itself.
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || /[\u0000-\u001f\u007f\\]/.test(next)) return '/';
  if (/^\/sign-in([?#/]|$)/.test(next)) return '/';
  return next;
}

/** True when the UI shows this path itself (client-side navigation); false for the server's own paths (an application, the API). */
export function isClientRoute(path: string): boolean {
  return !SERVER_PATHS.test(path.split(/[?#]/)[0] ?? '');
}

/** The code of the console's sign-in link in a location's fragment (`#code=tsl_...`), if any. */
export function linkCode(hash: string): string | undefined {
  const code = new URLSearchParams(hash.replace(/^#/, '')).get('code');
  return code || undefined;
}

/** The sign-in page's address that comes back to `path` afterwards. */
export function signInPath(path: string): string {
  const next = safeNext(path);
  return next === '/' ? '/sign-in' : `/sign-in?next=${encodeURIComponent(next)}`;
}

/**
 * The project to work in: the remembered one when the user is still a member, else the
 * default project when they are one, else their first; undefined when they have none.
 */
export function chooseProject(remembered: string | null | undefined, projects: readonly Membership[], fallback = 'admin'): string | undefined {
  if (remembered && projects.some((p) => p.project === remembered)) return remembered;
  if (projects.some((p) => p.project === fallback)) return fallback;
  return projects[0]?.project;
}

/** A role as the UI names it. */
export function roleLabel(role: Membership['role']): string {
  return role === 'principal-investigator' ? 'principal investigator' : 'scientist';
}

/** The minimum length of a password (as the server checks it). */
export const PASSWORD_MIN = 12;

/** Why a new password (typed twice) cannot be sent yet, or undefined when it can. */
export function passwordProblem(password: string, again: string): string | undefined {
  if (password.length < PASSWORD_MIN) return `at least ${PASSWORD_MIN} characters (${password.length} so far)`;
  if (again !== password) return 'the two new passwords differ';
  return undefined;
}

/** A password anyone can type: 24 characters from 18 random bytes (as the server generates them). */
export function generatePassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
