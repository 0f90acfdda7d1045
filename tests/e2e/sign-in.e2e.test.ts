import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { screenshot, skipBrowser, startUi, type UiEnv } from './browser.ts';
import { measureSignIn } from '../../bench/lib/sign-in-timing.ts';

/** Who a bearer token signs in as (no cookie): GET /api/auth/me's status and user. */
async function statusWithToken(url: string, token: string): Promise<{ status: number; user?: string }> {
  const res = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as { user?: { name: string } };
  return { status: res.status, user: body.user?.name };
}

async function signOut(page: Page): Promise<void> {
  await page.locator('.user-menu button.user').click();
  await page.getByRole('menuitem', { name: 'Sign out' }).click();
  await page.waitForURL(/\/sign-in$/);
  await page.getByRole('form', { name: 'Sign in' }).waitFor();
}

async function choosePassword(page: Page, password: string): Promise<void> {
  const form = page.getByRole('form', { name: 'Choose your password' });
  await form.waitFor();
  await form.getByLabel('New password', { exact: true }).fill(password);
  await form.getByLabel('New password again').fill(password);
  await form.getByRole('button', { name: 'Save and continue' }).click();
}

describe.skipIf(skipBrowser)('web UI with access control on: signing in, members, tokens, admin', () => {
  let env: UiEnv;

  beforeAll(async () => {
    env = await startUi({ auth: 'on' });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("goes from the console's link to a scientist who sees only their project", async () => {
    const { page, url, server } = env;
    const link = await server.tessera.consoleSignInLink();
    expect(link).toMatch(/\/sign-in#code=tsl_/);

    // The console's link: signed in as admin, who chooses a password; the code leaves the address bar.
    await page.goto(link!);
    await choosePassword(page, 'the admin chose this one');
    await page.waitForURL(`${url}/`);
    expect(page.url()).not.toContain('code=');
    await page.locator('.user-menu button.user', { hasText: 'admin' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).count()).toBe(1);
    expect(await page.locator('.badge.auth-off').count()).toBe(0);
    // The link worked once.
    expect((await fetch(`${url}/api/auth/link`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: new URL(link!).hash.slice('#code='.length) }) })).status).toBe(401);

    // A project "lab" from the selector.
    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'New project…' });
    await page.getByRole('dialog').getByLabel('Name').fill('lab');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await expect.poll(() => page.getByLabel('Project', { exact: true }).inputValue()).toBe('lab');

    // A user "sci" on the admin page; the generated password is shown once.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('button', { name: 'New user…' }).click();
    await page.getByRole('dialog').getByLabel('User name').fill('sci');
    await page.getByRole('dialog').getByLabel('Display name').fill('Sam Scientist');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    const handover = page.getByRole('dialog', { name: 'sci created' });
    const generated = await handover.getByLabel('Password').inputValue();
    expect(generated).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(await handover.getByRole('note').textContent()).toContain('shown this once');
    await handover.getByRole('button', { name: 'Done' }).click();
    await page.locator('tr[data-user="sci"]').waitFor();
    expect(await page.locator('tr[data-user="sci"]').textContent()).toContain('must choose a password');
    await screenshot(page, 'admin');

    // sci joins lab as a scientist on its members page.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members' }).click();
    await page.waitForURL(`${url}/projects/lab/members`);
    await page.getByLabel('User name').fill('sci');
    await page.getByLabel('Role', { exact: true }).selectOption('scientist');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.locator('tr[data-member="sci"]').waitFor();
    expect(await page.getByLabel('Role of sci').inputValue()).toBe('scientist');
    await screenshot(page, 'members');

    // The audit log has it, filtered by action.
    await page.goto(`${url}/admin/audit`);
    await page.getByLabel('Action').fill('member-set');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('tr[data-action]').count()).toBe(1);
    expect(await page.locator('tr[data-action="member-set"]').textContent()).toMatch(/admin.*member-set.*lab.*sci/);

    await signOut(page);

    // A wrong password: the server's answer, as it is.
    await page.getByLabel('User name').fill('sci');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('.error-box').textContent()).toContain('wrong user name or password (TESSERA_UNAUTHENTICATED, HTTP 401)');

    // Too many failed sign-ins for a name: the server's 429, with the wait, as it is.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${url}/api/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ghost', password: `guess ${i}` }) });
      expect(r.status).toBe(401);
    }
    await page.getByLabel('User name').fill('ghost');
    await page.getByLabel('Password').fill('one more guess');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('.error-box').textContent()).toMatch(/too many failed sign-ins for "ghost": try again in \d+ minute\(s\).*HTTP 429/);
    await page.getByLabel('User name').fill('sci');
    await screenshot(page, 'sign-in');

    // sci signs in with the generated password and must choose their own before anything else.
    await page.getByLabel('Password').fill(generated);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await choosePassword(page, 'sci chose this password');
    await page.waitForURL(`${url}/`);
    await page.locator('.user-menu button.user', { hasText: 'sci' }).waitFor();
    // Only lab, with sci's role, and no way to make projects.
    const options = await page.getByLabel('Project', { exact: true }).locator('option').evaluateAll((os) => os.map((o) => `${(o as HTMLOptionElement).value}=${o.textContent}`));
    expect(options).toEqual(['lab=lab · scientist']);
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).count()).toBe(0);
    // The members page, read-only for a scientist.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members' }).click();
    await page.locator('tr[data-member="sci"]').waitFor();
    expect(await page.getByRole('button', { name: 'Add member' }).count()).toBe(0);
    expect(await page.locator('tr[data-member="sci"] select').count()).toBe(0);
    expect(await page.locator('tr[data-member="sci"]').textContent()).toContain('scientist');
    // The admin page is not for scientists: the server says so, and the page shows it.
    await page.goto(`${url}/admin`);
    await expect.poll(() => page.locator('.error-box').first().textContent()).toContain('TESSERA_FORBIDDEN');

    // An API token: shown once, works as sci, revoked.
    await page.locator('.user-menu button.user').click();
    await page.getByRole('menuitem', { name: 'API tokens' }).click();
    await page.waitForURL(`${url}/tokens`);
    await page.getByRole('button', { name: 'New token…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('e2e script');
    await page.getByRole('dialog').getByLabel('Expires').selectOption({ label: 'in 30 days' });
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    const shown = page.getByRole('dialog', { name: 'Token e2e script' });
    const token = await shown.getByLabel('Token').inputValue();
    expect(token).toMatch(/^tsr_/);
    expect(await statusWithToken(url, token)).toEqual({ status: 200, user: 'sci' });
    await shown.getByRole('button', { name: 'Done' }).click();
    const row = page.locator('tr[data-token="e2e script"]');
    await row.waitFor();
    const prefix = (await row.locator('td').nth(1).textContent())!;
    expect(prefix.endsWith('…') && prefix.length > 4 && token.startsWith(prefix.slice(0, -1))).toBe(true);
    expect(await row.locator('td').nth(3).textContent()).not.toBe('never');
    await screenshot(page, 'tokens');
    await row.getByRole('button', { name: 'Revoke…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await row.waitFor({ state: 'detached' });
    expect((await statusWithToken(url, token)).status).toBe(401);

    // The session ends behind the page's back (signed out in another tab): the next answer,
    // a 401, sends the page to the sign-in page, which would come back to it.
    await page.evaluate(() => fetch('/api/auth/sign-out', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }));
    await page.getByRole('button', { name: 'New token…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('too late');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(`${url}/sign-in?next=%2Ftokens`);
    await page.getByRole('form', { name: 'Sign in' }).waitFor();

    // Signed out, a page of the app goes to the sign-in page, and back to it afterwards:
    // the time from submitting the form to the runs page drawn.
    await page.goto(`${url}/runs`);
    await page.waitForURL(`${url}/sign-in?next=%2Fruns`);
    const ms = await measureSignIn(page, 'sci', 'sci chose this password');
    console.log(`sign-in to first page rendered (the runs page): ${ms.toFixed(0)} ms`);
    expect(page.url()).toBe(`${url}/runs`);
    expect(ms).toBeGreaterThan(0);
    expect(env.pageErrors).toEqual([]);
  }, 90_000);
});
