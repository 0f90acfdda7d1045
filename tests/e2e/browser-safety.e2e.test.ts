import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '@tessera/dicom';
import { startTestServer, writeShellExtension, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import { CHROMIUM, CHROMIUM_ARGS, skipBrowser } from './browser.ts';

// A hostile page in real Chromium (issue 14): served from another origin, it tries a form
// POST, a multipart form upload, no-cors and CORS fetches against Tessera; nothing happens.
// evil.example resolves to 127.0.0.1 in this browser (--host-resolver-rules), so DNS
// rebinding is played too: Tessera's own port under that name answers 421.

const HOSTILE = (target: string): string => `<!doctype html><meta charset="utf-8"><title>hostile</title>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="job" method="POST" action="${target}/api/jobs" enctype="text/plain" target="sink1"><input name='{"workflow":"bs-wf","x":"' value='"}'></form>
<form id="upload" method="POST" action="${target}/api/dicom/import?project=admin" enctype="multipart/form-data" target="sink2"><input type="file" name="file"></form>
<script>
window.results = [];
async function attack() {
  const dicom = await (await fetch('/sample.dcm')).blob();
  const input = document.querySelector('#upload input');
  const dt = new DataTransfer();
  dt.items.add(new File([dicom], 'a.dcm'));
  input.files = dt.files;
  document.getElementById('job').submit();
  document.getElementById('upload').submit();
  const tries = {
    'no-cors job': () => fetch('${target}/api/jobs', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ workflow: 'bs-wf' }) }),
    'cors job': () => fetch('${target}/api/jobs', { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflow: 'bs-wf' }) }),
    'no-cors upload': () => { const fd = new FormData(); fd.append('file', dicom, 'b.dcm'); return fetch('${target}/api/dicom/import?project=admin', { method: 'POST', mode: 'no-cors', body: fd }); },
    'no-cors stow': () => fetch('${target}/projects/admin/dicom-web/studies', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: dicom }),
    'read runs': () => fetch('${target}/api/runs'),
  };
  for (const [name, go] of Object.entries(tries)) {
    try { const r = await go(); results.push(name + ' ' + r.type + ' ' + r.status); } catch (e) { results.push(name + ' failed'); }
  }
  window.done = true;
}
attack();
</script>`;

describe.skipIf(skipBrowser)('browser safety in Chromium: a hostile page on another origin achieves nothing', () => {
  let s: TestServer;
  let hostile: Server;
  let browser: Browser;
  let tesseraPort: number;
  let hostilePort: number;
  let dicom: Buffer;
  /** What reached Tessera's HTTP server: method, path, Origin, answer status. */
  const reached: string[] = [];

  beforeAll(async () => {
    // Access control off: this is about what another origin's page can do to a server that lets anyone in.
    s = await startTestServer({ auth: 'off' });
    tesseraPort = Number(new URL(s.url).port);
    await writeShellExtension(s.extRoot, 'bs', [{ id: 'bs-wf', tasks: [{ id: 't', sh: 'exit 0' }] }]);
    await s.call('POST', '/api/workflows/reload');
    const { files } = await writeSampleCt(join(s.home, 'samples', 'e2e'), { slices: 1, size: 8 });
    dicom = await readFile(files[0]!);
    s.tessera.app.server.on('request', (req, res) => {
      res.on('finish', () => reached.push(`${req.method} ${req.url} ${req.headers.origin ?? '-'} ${res.statusCode}`));
    });
    hostile = createServer((req, res) => {
      if (req.url === '/sample.dcm') return void res.end(dicom);
      const target = new URL(req.url!, 'http://x').searchParams.get('target')!;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(HOSTILE(target));
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
    hostilePort = (hostile.address() as AddressInfo).port;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, '--disable-gpu', '--host-resolver-rules=MAP evil.example 127.0.0.1'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => hostile?.close(r));
    await s?.close();
  });

  const counts = async (): Promise<{ runs: number; series: number }> => ({
    runs: (await s.call('GET', '/api/runs')).body.total,
    series: (await s.call('GET', '/api/series?project=admin')).body.total,
  });

  async function attackFrom(page: Page, origin: string): Promise<string[]> {
    reached.length = 0;
    await page.goto(`${origin}/?target=${encodeURIComponent(s.url)}`);
    await page.waitForFunction(() => (window as unknown as { done?: boolean }).done === true, undefined, { timeout: 15_000 });
    // The two forms load into their frames; wait until both answers came.
    await expect.poll(() => reached.filter((r) => r.startsWith('POST')).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
    return page.evaluate(() => (window as unknown as { results: string[] }).results);
  }

  it.each([
    ['another site (evil.example)', () => `http://evil.example:${hostilePort}`],
    ['the same host on another port', () => `http://127.0.0.1:${hostilePort}`],
  ])('from %s: the forms and fetches are refused before they do anything', async (_what, origin) => {
    const before = await counts();
    const page = await (await browser.newContext()).newPage();
    const results = await attackFrom(page, origin());
    // What got through to Tessera was refused 403, with the hostile page's Origin.
    const posts = reached.filter((r) => r.startsWith('POST'));
    expect(posts.length).toBeGreaterThanOrEqual(4);
    for (const p of posts) expect(p, p).toMatch(new RegExp(` ${origin().replace(/[.]/g, '\\.')} 403$`));
    // The CORS fetches cannot read an answer: no Access-Control-Allow-Origin.
    expect(results).toContain('cors job failed');
    expect(results).toContain('read runs failed');
    expect(await counts()).toEqual(before);
    await page.context().close();
  });

  it('the same upload from Tessera\'s own origin is stored (the attack above would have worked without the check)', async () => {
    const before = await counts();
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${s.url}/api/health`);
    const status = await page.evaluate(async (bytes) => {
      const fd = new FormData();
      fd.append('file', new Blob([new Uint8Array(bytes)]), 'a.dcm');
      return (await fetch('/api/dicom/import?project=admin', { method: 'POST', body: fd })).status;
    }, [...dicom]);
    expect(status).toBe(200);
    expect((await counts()).series).toBe(before.series + 1);
    await page.context().close();
  });

  it('DNS rebinding: Tessera\'s own port under the name evil.example answers 421, to pages and to fetches', async () => {
    const page = await (await browser.newContext()).newPage();
    const res = await page.goto(`http://evil.example:${tesseraPort}/`);
    expect(res!.status()).toBe(421);
    expect(await page.content()).toContain('TESSERA_HOST_NOT_ALLOWED');
    const api = await page.evaluate(async () => (await fetch('/api/runs')).status);
    expect(api).toBe(421);
    await page.context().close();
  });
});
