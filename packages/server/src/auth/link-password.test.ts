import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';

/** A request with a cookie jar of one cookie (the session), as a browser would send it. */
async function call(url: string, method: string, path: string, body?: unknown, cookie?: string) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie ? { cookie } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const set = res.headers.get('set-cookie');
  return { status: res.status, body: text ? JSON.parse(text) : undefined, cookie: set ? set.split(';')[0] : undefined };
}

describe("the first password after the console's sign-in link", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
  });
  afterAll(async () => s?.close());

  it('is chosen without the generated one, in that session only, and only once', async () => {
    const link = await s.tessera.consoleSignInLink();
    const code = new URL(link!).hash.replace('#code=', '');
    const signedIn = await call(s.url, 'POST', '/api/auth/link', { code });
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.user.must_change_password).toBe(true);
    const cookie = signedIn.cookie!;
    // Until then, nothing else.
    expect((await call(s.url, 'GET', '/api/users', undefined, cookie)).body.error.code).toBe('TESSERA_PASSWORD_CHANGE_REQUIRED');

    expect((await call(s.url, 'POST', '/api/auth/password', { new_password: 'a first password of mine' }, cookie)).status).toBe(204);
    const me = await call(s.url, 'GET', '/api/auth/me', undefined, cookie);
    expect(me.body.user.must_change_password).toBe(false);
    expect((await call(s.url, 'GET', '/api/users', undefined, cookie)).status).toBe(200);

    // Once chosen, changing it takes the current one, in the link's session too.
    const again = await call(s.url, 'POST', '/api/auth/password', { new_password: 'another password of mine' }, cookie);
    expect(again.status).toBe(400);
    expect(again.body.error.details).toEqual([{ where: 'current_password', message: 'is required' }]);
  });

  it('takes the current password in a session signed in with a password, even while it must change', async () => {
    const admin = await call(s.url, 'POST', '/api/auth/sign-in', { username: 'admin', password: 'a first password of mine' });
    expect(admin.status).toBe(200);
    expect((await call(s.url, 'POST', '/api/users', { name: 'sci', password: 'set by the admin 1' }, admin.cookie)).status).toBe(201);
    const sci = await call(s.url, 'POST', '/api/auth/sign-in', { username: 'sci', password: 'set by the admin 1' });
    expect(sci.body.user.must_change_password).toBe(true);
    const without = await call(s.url, 'POST', '/api/auth/password', { new_password: 'a password of my own' }, sci.cookie);
    expect(without.status).toBe(400);
    expect((await call(s.url, 'POST', '/api/auth/password', { current_password: 'set by the admin 1', new_password: 'a password of my own' }, sci.cookie)).status).toBe(204);
  });
});
