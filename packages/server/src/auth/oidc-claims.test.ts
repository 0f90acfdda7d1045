import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { DEFAULT_OIDC_PROJECT_ROLE_PATTERN, loadConfig } from '../config.ts';
import { claimAt, claimValues, displayNameFrom, rolesFromClaims, safeNextPath, userNameFrom } from './oidc-claims.ts';

const rules = { adminValues: ['tessera-admin'], projectRolePattern: new RegExp(DEFAULT_OIDC_PROJECT_ROLE_PATTERN) };

describe('OpenID Connect claims', () => {
  it('reads a claim by its name, or by a dotted path as Keycloak nests realm and client roles', () => {
    const claims = {
      groups: ['/tessera/lab/scientist'],
      realm_access: { roles: ['tessera/lab/principal-investigator', 'offline_access'] },
      resource_access: { tessera: { roles: ['tessera-admin'] } },
      'https://example.org/roles': ['a'],
    };
    expect(claimValues(claims, 'groups')).toEqual(['/tessera/lab/scientist']);
    expect(claimValues(claims, 'realm_access.roles')).toEqual(['tessera/lab/principal-investigator', 'offline_access']);
    expect(claimValues(claims, 'resource_access.tessera.roles')).toEqual(['tessera-admin']);
    // A claim whose own name has dots wins over the path.
    expect(claimValues(claims, 'https://example.org/roles')).toEqual(['a']);
    expect(claimValues({ role: 'tessera-admin' }, 'role')).toEqual(['tessera-admin']);
    expect(claimValues({ groups: [1, null, '/tessera/x/scientist', { a: 1 }] }, 'groups')).toEqual(['/tessera/x/scientist']);
    expect(claimValues(claims, 'realm_access.missing')).toEqual([]);
    expect(claimValues(claims, 'groups.0')).toEqual([]);
    expect(claimAt({ a: { b: null } }, 'a.b.c')).toBeUndefined();
    expect(claimAt({}, 'toString')).toBeUndefined();
  });

  it('maps Keycloak group paths and realm role names to project roles and admin, the higher role when a project is named twice', () => {
    const roles = rolesFromClaims(
      ['/tessera/lab/scientist', 'tessera/lab/principal-investigator', '/tessera/imaging-core/scientist', '/tessera/x/viewer', '/other/lab/scientist', '/tessera/UPPER/scientist', 'tessera-admin'],
      rules,
    );
    expect(Object.fromEntries(roles.projects)).toEqual({ lab: 'principal-investigator', 'imaging-core': 'scientist' });
    expect(roles.admin).toBe(true);
    expect(rolesFromClaims(['/tessera/lab/scientist', '/tessera/lab/scientist'], rules)).toEqual({ admin: false, projects: new Map([['lab', 'scientist']]) });
    // A Keycloak group's full path and a realm role of the same name are the same value.
    expect(rolesFromClaims(['/tessera-admin'], rules).admin).toBe(true);
    expect(rolesFromClaims(['tessera-admin'], { ...rules, adminValues: ['/tessera-admin'] }).admin).toBe(true);
    expect(rolesFromClaims(['/tessera-admins'], rules).admin).toBe(false);
    // No admin values: the claims do not decide who is an admin.
    expect(rolesFromClaims(['tessera-admin'], { ...rules, adminValues: [] }).admin).toBeUndefined();
    // A custom pattern, with a role group that names something else than Tessera's roles: ignored.
    const custom = { adminValues: ['platform-admins'], projectRolePattern: /^proj-(?<project>[a-z]+)-(?<role>[a-z-]+)$/ };
    expect(Object.fromEntries(rolesFromClaims(['proj-lab-scientist', 'proj-ct-admin', 'platform-admins'], custom).projects)).toEqual({ lab: 'scientist' });
  });

  it('names a new user from preferred_username, else email, else sub, the first valid name', () => {
    expect(userNameFrom({ sub: 'f3a1', preferred_username: 'alice', email: 'alice@example.org' })).toBe('alice');
    expect(userNameFrom({ sub: 'f3a1', preferred_username: 'Alice Example', email: 'alice@example.org' })).toBe('alice@example.org');
    expect(userNameFrom({ sub: '0b5e6c1e-5a8f-4d0e-9d0a-3f0e6a1b2c3d' })).toBe('0b5e6c1e-5a8f-4d0e-9d0a-3f0e6a1b2c3d');
    expect(userNameFrom({ sub: '_x', preferred_username: '' })).toBeUndefined();
    expect(displayNameFrom({ name: ' Alice Example ' })).toBe('Alice Example');
    expect(displayNameFrom({ given_name: 'Alice', family_name: 'Example' })).toBe('Alice Example');
    expect(displayNameFrom({ name: '' })).toBeUndefined();
  });

  it('goes on only to a path of this server after signing in', () => {
    expect(safeNextPath(undefined)).toBe('/');
    expect(safeNextPath('')).toBe('/');
    expect(safeNextPath('/runs?project=lab#top')).toBe('/runs?project=lab#top');
    expect(safeNextPath('/a/../runs')).toBe('/runs');
    for (const bad of ['//evil.example', '/\\evil.example', '/\\/evil.example', 'https://evil.example/', 'runs', '/x\ny', 'javascript:alert(1)', '/%0d%0aSet-Cookie:x', ' /runs']) {
      const got = safeNextPath(bad);
      // Either refused, or a path on this origin whose text cannot break out of the Location header.
      if (got !== undefined) expect(got.startsWith('/') && !got.startsWith('//') && !/[\r\n\\]/.test(got)).toBe(true);
      else expect(got).toBeUndefined();
    }
    expect(safeNextPath('//evil.example')).toBeUndefined();
    expect(safeNextPath('/\\evil.example')).toBeUndefined();
    expect(safeNextPath('https://evil.example/')).toBeUndefined();
  });
});

describe('OpenID Connect configuration', () => {
  const base = { TESSERA_OIDC_ISSUER: 'https://keycloak.example.org/realms/kaapana', TESSERA_OIDC_CLIENT_ID: 'tessera', TESSERA_OIDC_CLIENT_SECRET: 's3cret-value-never-shown' };
  const problemsOf = (env: NodeJS.ProcessEnv): string => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(TesseraError);
      return (err as Error).message;
    }
    throw new Error('expected the configuration to be refused');
  };

  it('is off without the variables, and reads them with their defaults', () => {
    expect(loadConfig({}).oidc).toBeUndefined();
    const oidc = loadConfig(base).oidc!;
    expect(oidc).toMatchObject({ issuer: base.TESSERA_OIDC_ISSUER, clientId: 'tessera', name: 'Single sign-on', scopes: ['openid', 'profile', 'email'], rolesClaim: 'groups', adminValues: ['tessera-admin'] });
    expect(oidc.projectRolePattern.source).toBe(new RegExp(DEFAULT_OIDC_PROJECT_ROLE_PATTERN).source);
    expect(oidc.clientSecret.reveal()).toBe(base.TESSERA_OIDC_CLIENT_SECRET);
    const custom = loadConfig({ ...base, TESSERA_OIDC_NAME: 'DKFZ login', TESSERA_OIDC_SCOPES: 'openid,profile groups', TESSERA_OIDC_ROLES_CLAIM: 'realm_access.roles', TESSERA_OIDC_ADMIN_VALUES: 'none', HOST: '0.0.0.0', TESSERA_PUBLIC_URL: 'https://tessera.example.org' }).oidc!;
    expect(custom).toMatchObject({ name: 'DKFZ login', scopes: ['openid', 'profile', 'groups'], rolesClaim: 'realm_access.roles', adminValues: [] });
  });

  it('never shows the client secret: not in JSON, strings or inspected objects (logs)', () => {
    const config = loadConfig(base);
    for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config.oidc!.clientSecret), `${config.oidc!.clientSecret}`]) {
      expect(text).not.toContain(base.TESSERA_OIDC_CLIENT_SECRET);
    }
  });

  it('reads the secret from TESSERA_OIDC_CLIENT_SECRET_FILE, without its trailing newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-oidc-'));
    try {
      writeFileSync(join(dir, 'secret'), 'from-a-file\n');
      const { TESSERA_OIDC_CLIENT_SECRET: _, ...withoutSecret } = base;
      expect(loadConfig({ ...withoutSecret, TESSERA_OIDC_CLIENT_SECRET_FILE: join(dir, 'secret') }).oidc!.clientSecret.reveal()).toBe('from-a-file');
      const missing = problemsOf({ ...withoutSecret, TESSERA_OIDC_CLIENT_SECRET_FILE: join(dir, 'nope') });
      expect(missing).toContain('cannot be read (ENOENT)');
      expect(problemsOf({ ...base, TESSERA_OIDC_CLIENT_SECRET_FILE: join(dir, 'secret') })).toContain('both set');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad configuration at start with what to change, never quoting the secret', () => {
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ ...base, TESSERA_OIDC_ISSUER: 'http://keycloak.example.org/realms/kaapana' }, 'must be an https URL (http only on a loopback address'],
      [{ ...base, TESSERA_OIDC_ISSUER: 'keycloak' }, 'is not a URL'],
      [{ ...base, TESSERA_OIDC_ISSUER: 'https://kc.example.org/realms/k?x=1' }, 'no query, fragment or credentials'],
      [{ ...base, TESSERA_OIDC_CLIENT_ID: '' }, 'TESSERA_OIDC_CLIENT_ID is not set'],
      [{ ...base, TESSERA_OIDC_CLIENT_SECRET: '' }, 'TESSERA_OIDC_CLIENT_SECRET (or TESSERA_OIDC_CLIENT_SECRET_FILE) is not set'],
      [{ TESSERA_OIDC_CLIENT_ID: 'tessera', TESSERA_OIDC_CLIENT_SECRET: base.TESSERA_OIDC_CLIENT_SECRET }, 'TESSERA_OIDC_ISSUER is not set'],
      [{ ...base, TESSERA_OIDC_SCOPES: 'profile email' }, 'must include openid'],
      [{ ...base, TESSERA_OIDC_PROJECT_ROLE_PATTERN: '^(?<project>[a-z]+)$' }, 'must have the named groups'],
      [{ ...base, TESSERA_OIDC_PROJECT_ROLE_PATTERN: '^(?<project>[a-z+)/(?<role>x)$' }, 'is not a regular expression'],
      [{ ...base, TESSERA_AUTH: 'off' }, 'TESSERA_AUTH=off'],
      [{ ...base, HOST: '0.0.0.0' }, 'needs TESSERA_PUBLIC_URL'],
    ];
    for (const [env, expected] of cases) {
      const message = problemsOf(env);
      expect(message).toContain(expected);
      expect(message).not.toContain(base.TESSERA_OIDC_CLIENT_SECRET);
    }
    // http is fine on loopback (development, these tests).
    expect(loadConfig({ ...base, TESSERA_OIDC_ISSUER: 'http://127.0.0.1:8081/realms/dev' }).oidc!.issuer).toBe('http://127.0.0.1:8081/realms/dev');
  });
});
