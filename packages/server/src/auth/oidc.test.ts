import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.ts';
import { TestBrowser, TestIssuer } from '../__fixtures__/oidc-provider.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { domainView, type Kysely } from '@tessera/db';
import { OIDC_COOKIE } from './oidc.ts';
import { OidcStore, type OidcTables } from './oidc-store.ts';

/**
 * OpenID Connect sign-in against a real OpenID provider (oidc-provider) on loopback:
 * the browser's round trip driven with fetch and a cookie jar, and the ways a sign-in
 * must be refused (state, issuer error, audience, expiry, signature, name taken),
 * each leaving no session behind.
 */
describe('OpenID Connect sign-in', () => {
  const SECRET = `client-secret-${randomBytes(12).toString('hex')}`;
  const OTHER_REDIRECT = 'http://127.0.0.1:9/other-app/callback';
  let idp: TestIssuer;
  let server: TestServer;
  let callbackUrl: string;

  beforeAll(async () => {
    idp = await TestIssuer.listen();
    const oidc = loadConfig({ TESSERA_OIDC_ISSUER: idp.issuer, TESSERA_OIDC_CLIENT_ID: 'tessera', TESSERA_OIDC_CLIENT_SECRET: SECRET, TESSERA_OIDC_NAME: 'Kaapana login' }).oidc;
    server = await startTestServer({ auth: 'on', oidc });
    callbackUrl = `${server.url}/api/auth/oidc/callback`;
    await idp.start([
      { client_id: 'tessera', client_secret: SECRET, redirect_uris: [callbackUrl] },
      { client_id: 'other-app', client_secret: 'other-app-secret', redirect_uris: [OTHER_REDIRECT] },
    ]);
    await server.tessera.projects.create({ name: 'lab' });
    await server.tessera.projects.create({ name: 'imaging' });
    idp.accounts.set('alice-sub', { preferred_username: 'alice', name: 'Alice Example', email: 'alice@example.org', groups: ['/tessera/lab/scientist'] });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  const store = () => server.tessera.access.store;
  const pending = () => new OidcStore(domainView<OidcTables>(store().db as unknown as Kysely<object>));
  const audit = async (action: string) => (await store().listAudit({ action, limit: 100, offset: 0 })).entries;

  /** Starts at Tessera and goes through the issuer up to its redirect back (not followed). */
  async function toCallback(browser: TestBrowser, account: string, next?: string): Promise<{ callback: URL; authorize: URL }> {
    idp.nextAccount = account;
    const start = await browser.get(`${server.url}/api/auth/oidc/start${next === undefined ? '' : `?next=${encodeURIComponent(next)}`}`);
    expect(start.status).toBe(302);
    const authorize = new URL(start.headers.get('location')!);
    expect(authorize.origin).toBe(idp.issuer);
    const callback = await browser.followUntil(authorize, callbackUrl);
    return { callback, authorize };
  }

  /** Calls the callback; answers where it sends the browser and the session cookie it set, if any. */
  async function finish(browser: TestBrowser, callback: URL): Promise<{ location: string; session: string | undefined; setCookies: string[] }> {
    const res = await browser.get(callback);
    expect(res.status).toBe(302);
    const setCookies = res.headers.getSetCookie();
    const session = setCookies.find((c) => c.startsWith('tessera_session='))?.split(';')[0]!.slice('tessera_session='.length);
    return { location: res.headers.get('location')!, session: session || undefined, setCookies };
  }

  async function me(browser: TestBrowser): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await browser.get(`${server.url}/api/auth/me`);
    return { status: res.status, body: await res.json() };
  }

  /** A refused callback: back to the sign-in page with a short text, no session, and an audit entry with the reason. */
  async function expectRefused(browser: TestBrowser, callback: URL, reason: RegExp): Promise<string> {
    const before = (await audit('sign-in-failed')).length;
    const { location, session } = await finish(browser, callback);
    expect(location).toMatch(/^\/sign-in\?error=/);
    expect(session).toBeUndefined();
    expect((await me(browser)).status).toBe(401);
    const failures = await audit('sign-in-failed');
    expect(failures.length).toBe(before + 1);
    const details = JSON.parse(failures[0]!.details!) as { reason: string };
    expect(details.reason).toMatch(reason);
    expect(JSON.stringify(failures[0])).not.toContain(SECRET);
    return decodeURIComponent(location.slice('/sign-in?error='.length));
  }

  it('answers 502 saying what failed while the issuer is unreachable, and signs in once it is back (discovery is lazy)', async () => {
    idp.down = true;
    try {
      const res = await fetch(`${server.url}/api/auth/oidc/start`, { redirect: 'manual' });
      expect(res.status).toBe(502);
      expect(res.headers.getSetCookie()).toEqual([]);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('TESSERA_IDENTITY_PROVIDER');
      expect(body.error.message).toContain(`${idp.issuer}/.well-known/openid-configuration`);
      expect(body.error.message).toContain('Check TESSERA_OIDC_ISSUER');
      expect(body.error.message).not.toContain(SECRET);
    } finally {
      idp.down = false;
    }
    // A failed discovery is not kept: the next sign-in discovers the issuer.
    const again = await fetch(`${server.url}/api/auth/oidc/start`, { redirect: 'manual' });
    expect(again.status).toBe(302);
    expect(again.headers.get('location')!.startsWith(`${idp.issuer}/auth?`)).toBe(true);
    const providers = await server.call('GET', '/api/auth/providers');
    expect(providers.body.oidc).toEqual({ name: 'Kaapana login', start_url: '/api/auth/oidc/start' });
  });

  it('signs in with the authorization code flow and PKCE, creates the user from the claims with the role the groups give, and goes to next', async () => {
    const browser = new TestBrowser();
    const { callback, authorize } = await toCallback(browser, 'alice-sub', '/runs?project=lab');
    const q = authorize.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe('tessera');
    expect(q.get('redirect_uri')).toBe(callbackUrl);
    expect(q.get('scope')).toBe('openid profile email');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('state')!.length).toBeGreaterThanOrEqual(32);
    expect(q.get('nonce')!.length).toBeGreaterThanOrEqual(32);
    expect(authorize.href).not.toContain(SECRET);
    expect(callback.searchParams.get('code')).toBeTruthy();
    expect(callback.searchParams.get('state')).toBe(q.get('state'));
    // The pending sign-in's handle rides in an HttpOnly, SameSite=Lax cookie for the callback's path only.
    const handle = browser.cookie('127.0.0.1', OIDC_COOKIE)!;
    expect(handle).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(server.tessera.access.oidc!.redirectUri).toBe(callbackUrl);
    const pendingBefore = await pending().pendingCount();

    const { location, session, setCookies } = await finish(browser, callback);
    expect(location).toBe('/runs?project=lab');
    expect(session).toMatch(/^tss_/);
    expect(setCookies.find((c) => c.startsWith('tessera_session='))).toMatch(/HttpOnly; SameSite=Lax/);
    expect(setCookies.find((c) => c.startsWith(`${OIDC_COOKIE}=;`))).toMatch(/Path=\/api\/auth\/oidc; HttpOnly; SameSite=Lax; Max-Age=0/);
    expect(browser.cookie('127.0.0.1', OIDC_COOKIE)).toBeUndefined();
    // The pending sign-in was taken: it cannot be used again.
    expect(await pending().pendingCount()).toBe(pendingBefore - 1);

    const { status, body } = await me(browser);
    expect(status).toBe(200);
    expect(body.via).toBe('session');
    expect(body.user).toMatchObject({ name: 'alice', display_name: 'Alice Example', source: 'oidc', admin: false, must_change_password: false, disabled: false });
    expect(body.projects).toEqual([{ project: 'lab', role: 'scientist' }]);
    const alice = (await store().userByName('alice'))!;
    expect(alice).toMatchObject({ oidc_issuer: idp.issuer, oidc_subject: 'alice-sub', password_hash: null });
    expect((await audit('sign-in'))[0]).toMatchObject({ actor: 'alice', target: 'OpenID Connect', outcome: 'ok' });
    expect((await audit('user-created'))[0]).toMatchObject({ target: 'alice', outcome: 'ok' });
    // Signed in as a scientist of lab: its runs are visible, another project does not exist for alice.
    const cookie = browser.cookieHeader(new URL(server.url));
    expect((await fetch(`${server.url}/api/runs?project=lab`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${server.url}/api/runs?project=imaging`, { headers: { cookie } })).status).toBe(404);
  });

  it('sets admin and memberships from the claims at every sign-in, replacing only what the claims granted', async () => {
    const alice = (await store().userByName('alice'))!;
    const imaging = (await server.tessera.projects.findByName('imaging'))!;
    // A membership a principal investigator set by hand in Tessera.
    await store().setMembership(imaging.id, alice.id, 'scientist');
    idp.accounts.set('alice-sub', { preferred_username: 'alice', name: 'Alice B. Example', groups: ['/tessera/lab/principal-investigator', '/tessera/ghost/scientist', 'tessera-admin'] });
    let browser = new TestBrowser();
    expect((await finish(browser, (await toCallback(browser, 'alice-sub')).callback)).location).toBe('/');
    let body = (await me(browser)).body;
    expect(body.user).toMatchObject({ name: 'alice', display_name: 'Alice B. Example', admin: true });
    const rows = async () => Object.fromEntries((await store().membershipsOf(alice.id)).map((m) => [m.project_id, `${m.role} ${m.source}`]));
    const lab = (await server.tessera.projects.findByName('lab'))!;
    expect(await rows()).toEqual({ [lab.id]: 'principal-investigator oidc', [imaging.id]: 'scientist manual' });
    expect(JSON.parse((await audit('oidc-roles-applied'))[0]!.details!)).toEqual({ admin: true, added: [], changed: ['lab'], removed: [], unknown_projects: ['ghost'] });

    // The issuer drops the groups: admin and the claimed membership go, the one set by hand stays.
    idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: [] });
    browser = new TestBrowser();
    await finish(browser, (await toCallback(browser, 'alice-sub')).callback);
    body = (await me(browser)).body;
    expect(body.user).toMatchObject({ admin: false, display_name: 'Alice B. Example' });
    expect(body.projects).toEqual([{ project: 'imaging', role: 'scientist' }]);
    expect(await rows()).toEqual({ [imaging.id]: 'scientist manual' });
    idp.accounts.set('alice-sub', { preferred_username: 'alice', name: 'Alice Example', groups: ['/tessera/lab/scientist'] });
  });

  it('refuses a callback whose state is not the one of the sign-in started in this browser, and then the real one too (used once)', async () => {
    const browser = new TestBrowser();
    const { callback } = await toCallback(browser, 'alice-sub');
    const forged = new URL(callback);
    forged.searchParams.set('state', 'not-the-state-we-sent');
    // The callback clears the pending sign-in: the jar would drop the cookie, so keep a copy for the replay below.
    const handle = browser.cookie('127.0.0.1', OIDC_COOKIE)!;
    expect(await expectRefused(browser, forged, /state/)).toContain('does not belong to the sign-in started in this browser');
    browser.keep(new URL(callbackUrl), [`${OIDC_COOKIE}=${handle}; Path=/api/auth/oidc`]);
    await expectRefused(browser, callback, /no pending sign-in/);
  });

  it('answers 502 when the issuer goes away between the start and the callback, without a session', async () => {
    const browser = new TestBrowser();
    const { callback } = await toCallback(browser, 'alice-sub');
    idp.down = true;
    try {
      const res = await browser.get(callback);
      expect(res.status).toBe(502);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('TESSERA_IDENTITY_PROVIDER');
      expect(body.error.message).toContain("issuer's token endpoint could not be used");
      expect(body.error.message).not.toContain(SECRET);
      expect(res.headers.getSetCookie().some((c) => /^tessera_session=[^;]/.test(c))).toBe(false);
    } finally {
      idp.down = false;
    }
    expect((await me(browser)).status).toBe(401);
  });

  it('refuses a callback in a browser that did not start the sign-in (login CSRF)', async () => {
    const { callback } = await toCallback(new TestBrowser(), 'alice-sub');
    await expectRefused(new TestBrowser(), callback, /not started in this browser/);
  });

  it('refuses when the issuer answers an error (the user declined)', async () => {
    const browser = new TestBrowser();
    idp.denyNext = true;
    const { callback } = await toCallback(browser, 'alice-sub');
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(await expectRefused(browser, callback, /access_denied/)).toContain('Kaapana login did not sign you in (access_denied)');
  });

  it("refuses an ID token issued for another client (audience), signed by the issuer with this sign-in's nonce", async () => {
    const browser = new TestBrowser();
    const { callback, authorize } = await toCallback(browser, 'alice-sub');
    // The same user signs in to another client of the issuer, with the nonce of Tessera's sign-in.
    const verifier = randomBytes(32).toString('base64url');
    const other = new URL(`${idp.issuer}/auth`);
    for (const [k, v] of Object.entries({
      client_id: 'other-app', response_type: 'code', scope: 'openid profile', redirect_uri: OTHER_REDIRECT, state: 'other-state',
      nonce: authorize.searchParams.get('nonce')!, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    })) other.searchParams.set(k, v);
    const otherCallback = await browser.followUntil(other, OTHER_REDIRECT);
    const token = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('other-app:other-app-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: otherCallback.searchParams.get('code')!, redirect_uri: OTHER_REDIRECT, code_verifier: verifier }),
    });
    expect(token.status).toBe(200);
    const otherIdToken = ((await token.json()) as { id_token: string }).id_token;
    const claims = JSON.parse(Buffer.from(otherIdToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ aud: 'other-app', iss: idp.issuer, sub: 'alice-sub', nonce: authorize.searchParams.get('nonce') });
    // Tessera's code exchange gets that token in place of its own.
    idp.rewriteNextToken = (body) => ({ ...body, id_token: otherIdToken });
    await expectRefused(browser, callback, /"aud"/);
    expect(idp.rewriteNextToken).toBeUndefined();
  });

  /** Claims of a valid ID token for this sign-in, to sign with the issuer's key. */
  const idClaims = (authorize: URL, overrides: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: idp.issuer, sub: 'alice-sub', aud: 'tessera', nonce: authorize.searchParams.get('nonce'), iat: now, exp: now + 300, auth_time: now, ...overrides };
  };

  it('takes an ID token the issuer signed with valid claims (the control of the next test)', async () => {
    const browser = new TestBrowser();
    const { callback, authorize } = await toCallback(browser, 'alice-sub');
    idp.rewriteNextToken = (body) => ({ ...body, id_token: idp.signIdToken(idClaims(authorize)) });
    const { session } = await finish(browser, callback);
    expect(session).toMatch(/^tss_/);
    expect((await me(browser)).body.user.name).toBe('alice');
  });

  it('refuses an expired ID token, though signed by the issuer for this sign-in', async () => {
    const browser = new TestBrowser();
    const { callback, authorize } = await toCallback(browser, 'alice-sub');
    const hourAgo = Math.floor(Date.now() / 1000) - 3600;
    idp.rewriteNextToken = (body) => ({ ...body, id_token: idp.signIdToken(idClaims(authorize, { iat: hourAgo, auth_time: hourAgo, exp: hourAgo + 600 })) });
    await expectRefused(browser, callback, /"exp"/);
  });

  it('refuses an ID token whose signature was altered on the way', async () => {
    const browser = new TestBrowser();
    const { callback } = await toCallback(browser, 'alice-sub');
    idp.rewriteNextToken = (body) => {
      const [header, payload, signature] = (body.id_token as string).split('.');
      const bytes = Buffer.from(signature!, 'base64url');
      bytes[10] = bytes[10]! ^ 0x01;
      return { ...body, id_token: `${header}.${payload}.${bytes.toString('base64url')}` };
    };
    await expectRefused(browser, callback, /signature/);
  });

  it('refuses, rather than merges, an issuer account whose name is a local user', async () => {
    await store().insertUser({ name: 'bob', display_name: 'Local Bob', password_hash: 'not-a-real-hash', admin: 0, source: 'local', oidc_issuer: null, oidc_subject: null, disabled: 0, must_change_password: 0 });
    idp.accounts.set('bob-sub', { preferred_username: 'bob', groups: ['/tessera/lab/principal-investigator'] });
    const browser = new TestBrowser();
    const { callback } = await toCallback(browser, 'bob-sub');
    expect(await expectRefused(browser, callback, /belongs to a local account/)).toContain('"bob" belongs to another account on this server');
    const bob = (await store().userByName('bob'))!;
    expect(bob).toMatchObject({ source: 'local', oidc_subject: null });
    expect(await store().membershipsOf(bob.id)).toEqual([]);
    expect(await store().userByOidc(idp.issuer, 'bob-sub')).toBeUndefined();
    // Nor with another case: "Bob" would pass for "bob".
    idp.accounts.set('bob2-sub', { preferred_username: 'Bob' });
    const other = new TestBrowser();
    await expectRefused(other, (await toCallback(other, 'bob2-sub')).callback, /"Bob" belongs to a local account "bob"/);
    expect(await store().userByOidc(idp.issuer, 'bob2-sub')).toBeUndefined();
  });

  it('refuses a disabled user, and a next that leaves this server', async () => {
    const alice = (await store().userByName('alice'))!;
    await store().updateUser(alice.id, { disabled: 1 });
    try {
      const browser = new TestBrowser();
      await expectRefused(browser, (await toCallback(browser, 'alice-sub')).callback, /disabled/);
    } finally {
      await store().updateUser(alice.id, { disabled: 0 });
    }
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const res = await fetch(`${server.url}/api/auth/oidc/start?next=${encodeURIComponent(next)}`, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });
});
