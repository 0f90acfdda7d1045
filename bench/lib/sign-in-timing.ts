import type { Page } from 'playwright-core';

/** What the runs page draws once its list is in: rows, or its note that there are none. */
export const RUNS_DRAWN = 'tr[data-run], .page .empty';

/**
 * Signs in on the sign-in page the browser is at (`/sign-in?next=/runs`) and answers the
 * milliseconds from submitting the form to the runs page's list drawn: the form's submit
 * event and the first frame after the list is in the DOM, both on the page's own clock
 * (no driver round trips counted). Used by tests/e2e/sign-in.e2e.test.ts and bench/sign-in.ts.
 */
export async function measureSignIn(page: Page, username: string, password: string): Promise<number> {
  const form = page.getByRole('form', { name: 'Sign in' });
  await form.getByLabel('User name').fill(username);
  await form.getByLabel('Password').fill(password);
  await page.evaluate((drawn) => {
    const w = window as unknown as { __signIn?: { submitted?: number; drawn?: number } };
    const t: { submitted?: number; drawn?: number } = (w.__signIn = {});
    document.querySelector('form[aria-label="Sign in"]')!.addEventListener('submit', () => (t.submitted = performance.now()), { capture: true });
    const observer = new MutationObserver(() => {
      if (t.submitted === undefined || !document.querySelector(drawn)) return;
      observer.disconnect();
      // The frame that shows it: after the next animation frame's paint.
      requestAnimationFrame(() => setTimeout(() => (t.drawn = performance.now()), 0));
    });
    observer.observe(document.body, { childList: true, subtree: true });
  }, RUNS_DRAWN);
  await form.getByRole('button', { name: 'Sign in' }).click();
  const result = await page.waitForFunction(
    () => {
      const t = (window as unknown as { __signIn?: { submitted?: number; drawn?: number } }).__signIn;
      return t?.drawn !== undefined && t.submitted !== undefined ? t.drawn - t.submitted : false;
    },
    undefined,
    { timeout: 15_000 },
  );
  return (await result.jsonValue()) as number;
}
