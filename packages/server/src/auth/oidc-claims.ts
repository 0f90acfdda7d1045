import { USER_NAME_PATTERN, type ProjectRole } from '@tessera/api';

/**
 * How the claims of an OpenID Connect sign-in become a Tessera user: the name, the
 * display name, admin or not, and project roles. Pure functions, so each rule is
 * tested on its own (oidc-claims.test.ts); oidc.ts applies them at each sign-in.
 */

/**
 * The value of a claim: the claim of that exact name (some issuers use names with dots,
 * such as URLs), else the dotted path into nested objects, as Keycloak puts realm roles
 * at `realm_access.roles` and a client's roles at `resource_access.<client>.roles`.
 */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** The strings of the roles claim: an array's strings, or a single string; nothing else counts. */
export function claimValues(claims: Record<string, unknown>, path: string): string[] {
  const value = claimAt(claims, path);
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

export interface RoleRules {
  /** Values that make the user a platform admin (a leading "/" aside); empty: the claims do not decide who is an admin. */
  adminValues: string[];
  /** Values naming a project and a role, with the named groups `project` and `role`. */
  projectRolePattern: RegExp;
}

export interface ClaimedRoles {
  /** Admin or not; undefined when no admin values are configured (admins are then chosen in Tessera). */
  admin: boolean | undefined;
  /** Role by project name, the higher one when a project is named twice. */
  projects: Map<string, ProjectRole>;
}

/** The roles the values of the roles claim grant. A value that names another role than Tessera's two is ignored. */
export function rolesFromClaims(values: string[], rules: RoleRules): ClaimedRoles {
  const projects = new Map<string, ProjectRole>();
  for (const value of values) {
    const groups = rules.projectRolePattern.exec(value)?.groups;
    const project = groups?.project;
    const role = groups?.role;
    if (!project || (role !== 'scientist' && role !== 'principal-investigator')) continue;
    if (projects.get(project) !== 'principal-investigator') projects.set(project, role);
  }
  // A leading "/" does not count: Keycloak's group "tessera-admin" is "/tessera-admin" with full paths, its realm role "tessera-admin".
  const bare = (v: string): string => v.replace(/^\//, '');
  const adminValues = new Set(rules.adminValues.map(bare));
  return { admin: adminValues.size === 0 ? undefined : values.some((v) => adminValues.has(bare(v))), projects };
}

const USER_NAME = new RegExp(USER_NAME_PATTERN);

/**
 * The Tessera user name of a new OpenID Connect user: `preferred_username`, else `email`,
 * else `sub`, the first that is a valid user name (1-64 letters, digits, ".", "_", "-", "@").
 */
export function userNameFrom(claims: Record<string, unknown>): string | undefined {
  for (const key of ['preferred_username', 'email', 'sub']) {
    const value = claims[key];
    if (typeof value === 'string' && USER_NAME.test(value)) return value;
  }
  return undefined;
}

/** `name`, else given and family name, else undefined (the display name is then left as it is). */
export function displayNameFrom(claims: Record<string, unknown>): string | undefined {
  const str = (key: string): string | undefined => (typeof claims[key] === 'string' && (claims[key] as string).trim() !== '' ? (claims[key] as string).trim() : undefined);
  const name = str('name') ?? ([str('given_name'), str('family_name')].filter(Boolean).join(' ') || undefined);
  return name?.slice(0, 256);
}

const BASE = 'http://tessera.invalid';

/**
 * Where to go after signing in: a path of this server only. It must begin with "/" and
 * not "//" (another host), hold no backslash (browsers read "/\host" as "//host") and no
 * control character; answered normalized, or undefined when it is not such a path.
 * Missing or empty: "/".
 */
export function safeNextPath(next: string | undefined): string | undefined {
  if (next === undefined || next === '') return '/';
  if (!next.startsWith('/') || next.startsWith('//') || /[\\\x00-\x1f\x7f]/.test(next)) return undefined;
  let url: URL;
  try {
    url = new URL(next, BASE);
  } catch {
    return undefined;
  }
  if (url.origin !== BASE) return undefined;
  return `${url.pathname}${url.search}${url.hash}`;
}
