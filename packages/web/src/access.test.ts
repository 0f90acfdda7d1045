import { describe, expect, it } from 'vitest';
import { chooseProject, generatePassword, isClientRoute, linkCode, passwordProblem, safeNext, signInPath } from './access.ts';
import { ApiError, needsSignIn, onSignInNeeded, toApiError } from './api.ts';

describe('where the sign-in page goes next', () => {
  it('keeps a path of this server, with its query', () => {
    expect(safeNext('/runs')).toBe('/runs');
    expect(safeNext('/runs/r-1?tab=logs')).toBe('/runs/r-1?tab=logs');
    expect(safeNext('/applications/project/lab/release/ohif/')).toBe('/applications/project/lab/release/ohif/');
  });

  it('refuses what a browser would read as another site, and the sign-in page itself', () => {
    for (const bad of ['https://evil.example/', '//evil.example/x', '/\\evil.example', '/\\/evil.example', 'runs', '', '/x\ny', '/sign-in', '/sign-in?next=/runs', 'javascript:alert(1)']) {
      expect(safeNext(bad), bad).toBe('/');
    }
    expect(safeNext(null)).toBe('/');
    expect(safeNext('/sign-in-help')).toBe('/sign-in-help');
  });

  it('sends what the server serves itself (an application, the API) to a full page load', () => {
    expect(isClientRoute('/runs/r-1')).toBe(true);
    expect(isClientRoute('/projects/lab/members')).toBe(true);
    expect(isClientRoute('/applications')).toBe(true);
    expect(isClientRoute('/applications/project/lab/release/ohif/viewer?x=1')).toBe(false);
    expect(isClientRoute('/projects/lab/dicom-web/studies')).toBe(false);
    expect(isClientRoute('/api/openapi.json')).toBe(false);
  });

  it('comes back to where the user was', () => {
    expect(signInPath('/runs?job=j-1')).toBe('/sign-in?next=%2Fruns%3Fjob%3Dj-1');
    expect(signInPath('/')).toBe('/sign-in');
    expect(signInPath('//evil.example')).toBe('/sign-in');
  });
});

describe("the console's sign-in link", () => {
  it('reads the code from the fragment', () => {
    expect(linkCode('#code=tsl_abc-DEF_123')).toBe('tsl_abc-DEF_123');
    expect(linkCode('#x=1&code=tsl_a')).toBe('tsl_a');
    expect(linkCode('')).toBeUndefined();
    expect(linkCode('#code=')).toBeUndefined();
  });
});

describe("the user's project", () => {
  const projects = [
    { project: 'lab', role: 'scientist' as const },
    { project: 'admin', role: 'principal-investigator' as const },
  ];
  it('is the remembered one while the user is a member, else the default project, else the first', () => {
    expect(chooseProject('lab', projects)).toBe('lab');
    expect(chooseProject('gone', projects)).toBe('admin');
    expect(chooseProject(null, [projects[0]!])).toBe('lab');
    expect(chooseProject('lab', [])).toBeUndefined();
  });
});

describe('a new password', () => {
  it('takes 12 characters, typed the same twice', () => {
    expect(passwordProblem('short', 'short')).toMatch(/at least 12/);
    expect(passwordProblem('twelve chars', 'twelve charz')).toBe('the two new passwords differ');
    expect(passwordProblem('twelve chars', 'twelve chars')).toBeUndefined();
  });

  it('is generated with 144 random bits, as the server does', () => {
    const a = generatePassword();
    expect(a).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(generatePassword()).not.toBe(a);
  });
});

describe('answers that need a sign-in', () => {
  const err = (status: number, code: string) => new ApiError(status, code, 'm');
  it('are 401 and a password to change, except from the sign-in calls (a wrong password)', () => {
    expect(needsSignIn(err(401, 'TESSERA_UNAUTHENTICATED'), 'GET /api/runs')).toBe(true);
    expect(needsSignIn(err(403, 'TESSERA_PASSWORD_CHANGE_REQUIRED'), 'GET /api/series')).toBe(true);
    expect(needsSignIn(err(403, 'TESSERA_FORBIDDEN'), 'DELETE /api/series')).toBe(false);
    expect(needsSignIn(err(404, 'TESSERA_NOT_FOUND'), 'GET /api/projects/x')).toBe(false);
    expect(needsSignIn(err(401, 'TESSERA_UNAUTHENTICATED'), 'POST /api/auth/sign-in')).toBe(false);
    expect(needsSignIn(err(401, 'TESSERA_UNAUTHENTICATED'), 'POST /api/auth/link')).toBe(false);
    expect(needsSignIn(err(401, 'TESSERA_UNAUTHENTICATED'), 'POST /api/auth/password')).toBe(false);
  });

  it('reach the listeners from any error answer read by the client, an upload too', async () => {
    const seen: string[] = [];
    const stop = onSignInNeeded((e) => seen.push(e.code));
    await toApiError(new Response(JSON.stringify({ error: { code: 'TESSERA_UNAUTHENTICATED', message: 'sign in first' } }), { status: 401 }), 'upload');
    await toApiError(new Response(JSON.stringify({ error: { code: 'TESSERA_UNAUTHENTICATED', message: 'wrong user name or password' } }), { status: 401 }), 'POST /api/auth/sign-in');
    await toApiError(new Response('{}', { status: 500 }), 'GET /api/runs');
    stop();
    await toApiError(new Response('{}', { status: 401 }), 'GET /api/runs');
    expect(seen).toEqual(['TESSERA_UNAUTHENTICATED']);
  });
});
