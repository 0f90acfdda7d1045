// Shared fixture of the web UI's end-to-end tests: a real server (SQLite file, temp home),
// the built UI, and Debian's Chromium driven headless by playwright-core.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../fixtures/browser.ts';
import { ensureWebBuilt } from '../../packages/web/build.ts';
import { startTestServer, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import type { ServerConfig } from '../../packages/server/src/config.ts';
import { REPO_ROOT } from '../../packages/server/src/__fixtures__/server-process.ts';

export { CHROMIUM, CHROMIUM_ARGS, chromiumProblem, launchChromium, skipBrowser } from '../fixtures/browser.ts';

export interface UiEnv {
  server: TestServer;
  browser: Browser;
  page: Page;
  url: string;
  /** Errors the page logged or threw (a test asserts there were none it did not expect). */
  pageErrors: string[];
  close: () => Promise<void>;
}

/**
 * A server and a browser page. Access control is off (`auth: 'off'`, as with
 * TESSERA_AUTH=off) unless a test passes `auth: 'on'`: the tests of the pages test the
 * pages, without a sign-in first; tests/e2e/sign-in.e2e.test.ts tests signing in.
 */
export async function startUi(overrides: Partial<ServerConfig> = {}): Promise<UiEnv> {
  await ensureWebBuilt(() => undefined);
  const server = await startTestServer({ auth: 'off', ...overrides });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(15_000);
    return {
      server,
      browser,
      page,
      url: server.url,
      pageErrors,
      close: async () => {
        await browser?.close();
        await server.close();
      },
    };
  } catch (err) {
    await browser?.close();
    await server.close();
    throw err;
  }
}

/** Writes docs/screenshots/<name>.png when TESSERA_SCREENSHOTS=1 (npm run screenshots). */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env.TESSERA_SCREENSHOTS !== '1') return;
  const dir = join(REPO_ROOT, 'docs/screenshots');
  mkdirSync(dir, { recursive: true });
  // Notes of earlier steps of the journey would cover the page: dismissed for the picture.
  await page.evaluate(() => document.querySelectorAll<HTMLButtonElement>('.toast button').forEach((b) => b.click()));
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(dir, `${name}.png`) });
}
