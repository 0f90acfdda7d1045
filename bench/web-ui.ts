/**
 * Web UI benchmark: the first load of the Datasets page with many series in the store,
 * on loopback, in headless Chromium (Debian's, driven by playwright-core).
 *
 *   npx tsx bench/web-ui.ts [--series 10000] [--reps 5] [--port <free port>] [--keep]
 *
 * Fills a fresh store with N one-instance CT series (synthetic, 32x32; imported as
 * .zip archives of 1,000 files over POST /api/dicom/import), waits for their
 * thumbnails, then loads http://127.0.0.1:<port>/datasets in a new browser context
 * (empty cache) `reps` times and reports:
 * - time to the first thumbnail drawn, and to every thumbnail in the first screen drawn
 *   (from the navigation's start, as the page's performance clock counts it);
 * - the JavaScript the first page loads, gzipped as the server sends it.
 * Figures go to stdout as a Markdown table (bench/RESULTS.md, "Web UI").
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { launchChromium } from '../tests/fixtures/browser.ts';
import yazl from 'yazl';
import { writeSampleCt } from '../packages/dicom/src/samples/sample-ct.ts';
import { ensureWebBuilt, WEB_DIST } from '../packages/web/build.ts';
import { median } from './lib/stats.ts';
import { freePort } from '../packages/server/src/__fixtures__/server-process.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '5' },
    port: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(args.series);
const REPS = Number(args.reps);
const PORT = args.port ?? String(await freePort());
const URL_BASE = `http://127.0.0.1:${PORT}`;

const work = mkdtempSync(join(tmpdir(), 'tessera-bench-web-'));
const home = join(work, 'home');
const log = (m: string) => console.error(`[web-ui] ${m}`);

async function zipOf(files: string[], out: string): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const f of files) zip.addBuffer(await readFile(f), f.slice(work.length + 1), { compress: false });
  zip.end();
  const ws = createWriteStream(out);
  zip.outputStream.pipe(ws);
  await finished(ws);
}

async function fill(): Promise<void> {
  const t0 = Date.now();
  const batch = 1000;
  for (let start = 0; start < N; start += batch) {
    const files: string[] = [];
    for (let i = start; i < Math.min(N, start + batch); i++) {
      const ct = await writeSampleCt(join(work, 'data', String(i)), { slices: 1, size: 32, patientId: `BENCH-${String(i).padStart(6, '0')}` });
      files.push(...ct.files);
    }
    const zipFile = join(work, `batch-${start}.zip`);
    await zipOf(files, zipFile);
    const res = await fetch(`${URL_BASE}/api/dicom/import?dataset=bench`, { method: 'POST', headers: { 'content-type': 'application/zip' }, body: readFileSync(zipFile) });
    const body = (await res.json()) as { stored?: number; error?: { message: string } };
    if (!res.ok || body.stored !== files.length) throw new Error(`import of ${zipFile} failed: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    rmSync(join(work, 'data'), { recursive: true, force: true });
    rmSync(zipFile);
    log(`imported ${Math.min(N, start + batch)} of ${N} series`);
  }
  // Thumbnails are made once a series is complete (quiet for TESSERA_SERIES_QUIET_SECONDS).
  for (;;) {
    const r = (await (await fetch(`${URL_BASE}/api/series?limit=10000`)).json()) as { total: number; items: { thumbnail: string | null }[] };
    const missing = r.items.filter((s) => !s.thumbnail).length;
    if (r.total >= N && missing === 0) break;
    log(`waiting for thumbnails: ${missing} of the newest ${r.items.length} have none yet`);
    await new Promise((res) => setTimeout(res, 2000));
  }
  log(`store filled in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  await ensureWebBuilt(log);
  const server = spawn(process.execPath, [join(REPO, 'bin/tessera-server.mjs')], {
    cwd: REPO,
    // Access control off: this measures the gallery's first load, not signing in (bench/sign-in.ts does).
    env: { ...process.env, PORT, TESSERA_HOME: home, TESSERA_AUTH: 'off', DICOM_PORT: 'off', TESSERA_LOG_LEVEL: 'warn', TESSERA_RUNNERS: 'process', TESSERA_SERIES_QUIET_SECONDS: '0.5', TESSERA_WEB_BUILD: 'off' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    for (let i = 0; ; i++) {
      if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}`);
      const health = await fetch(`${URL_BASE}/api/health`).then((r) => (r.ok ? (r.json() as Promise<{ home: string }>) : undefined), () => undefined);
      // Only our own server (its home): never another one that happens to listen on the port.
      if (health?.home === home) break;
      if (health) throw new Error(`another Tessera server (home ${health.home}) answers on port ${PORT}; pass --port`);
      if (i > 300) throw new Error('the server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    await fill();

    const browser = await launchChromium();
    const first: number[] = [];
    const screen: number[] = [];
    const counts: number[] = [];
    let scripts = new Set<string>();
    for (let rep = 0; rep < REPS + 1; rep++) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const page = await context.newPage();
      const loaded = new Set<string>();
      page.on('response', (r) => {
        if (r.request().resourceType() === 'script') loaded.add(new URL(r.url()).pathname);
      });
      await page.goto(`${URL_BASE}/datasets`, { waitUntil: 'commit' });
      // First thumbnail drawn; then every card of the first screen with its thumbnail drawn.
      const t = await page.waitForFunction(
        () => {
          const w = window as unknown as { __first?: number };
          const imgs = [...document.querySelectorAll<HTMLImageElement>('.card img')];
          const done = imgs.filter((i) => i.complete && i.naturalWidth > 0);
          if (done.length > 0 && w.__first === undefined) w.__first = performance.now();
          const grid = document.querySelector('.vgrid');
          if (!grid || imgs.length === 0) return false;
          const bottom = grid.getBoundingClientRect().bottom;
          const inView = [...document.querySelectorAll<HTMLElement>('.card')].filter((c) => c.getBoundingClientRect().top < bottom);
          const ready = inView.every((c) => {
            const img = c.querySelector('img');
            return img && img.complete && img.naturalWidth > 0;
          });
          return ready ? { first: w.__first!, all: performance.now(), cards: inView.length } : false;
        },
        undefined,
        { polling: 'raf', timeout: 30_000 },
      );
      const v = (await t.jsonValue()) as { first: number; all: number; cards: number };
      if (process.env.BENCH_TRACE) {
        const entries = await page.evaluate(() => [
          ...performance.getEntriesByType('navigation').map((e) => ({ name: 'document', start: e.startTime, end: (e as PerformanceNavigationTiming).responseEnd, dcl: (e as PerformanceNavigationTiming).domContentLoadedEventEnd })),
          ...performance.getEntriesByType('resource').map((e) => ({ name: e.name.replace(location.origin, ''), start: e.startTime, end: (e as PerformanceResourceTiming).responseEnd, dcl: 0 })),
        ]);
        for (const e of entries.slice(0, 20)) log(`  ${e.start.toFixed(0).padStart(5)} -> ${e.end.toFixed(0).padStart(5)} ms ${e.name.slice(0, 90)}${e.dcl ? ` (DOMContentLoaded ${e.dcl.toFixed(0)})` : ''}`);
      }
      if (rep > 0) {
        // The first load warms the server (its SQLite cache and JIT), as a user's first visit after a start would not: not counted.
        first.push(v.first);
        screen.push(v.all);
        counts.push(v.cards);
      }
      log(`rep ${rep}${rep === 0 ? ' (warm-up, not counted)' : ''}: first thumbnail ${v.first.toFixed(0)} ms, first screen (${v.cards} cards) ${v.all.toFixed(0)} ms`);
      scripts = loaded;
      await context.close();
    }
    // Scrolling: frames while the gallery scrolls through the whole store (1/60 of it per
    // frame), then a jump to the middle and the time until its thumbnails are drawn.
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${URL_BASE}/datasets`);
    await page.waitForSelector('.card img');
    const scroll = (await page.evaluate(async () => {
      const grid = document.querySelector<HTMLElement>('.vgrid')!;
      const frames: number[] = [];
      let last = performance.now();
      for (let i = 1; i <= 120; i++) {
        grid.scrollTop = (grid.scrollHeight * i) / 120;
        await new Promise((r) => requestAnimationFrame(r));
        const now = performance.now();
        frames.push(now - last);
        last = now;
      }
      frames.sort((a, b) => a - b);
      const t0 = performance.now();
      grid.scrollTop = grid.scrollHeight / 2;
      for (;;) {
        await new Promise((r) => requestAnimationFrame(r));
        const bottom = grid.getBoundingClientRect().bottom;
        const cards = [...document.querySelectorAll<HTMLElement>('.card')].filter((c) => c.getBoundingClientRect().bottom > 52 && c.getBoundingClientRect().top < bottom);
        if (cards.length > 0 && cards.every((c) => c.querySelector('img')?.complete && (c.querySelector('img')?.naturalWidth ?? 0) > 0)) break;
        if (performance.now() - t0 > 20_000) break;
      }
      return { p50: frames[Math.floor(frames.length / 2)]!, p95: frames[Math.floor(frames.length * 0.95)]!, max: frames[frames.length - 1]!, jump: performance.now() - t0, dom: document.querySelectorAll('.card').length };
    })) as { p50: number; p95: number; max: number; jump: number; dom: number };
    await context.close();
    await browser.close();

    let raw = 0;
    let gz = 0;
    for (const p of scripts) {
      const body = readFileSync(join(WEB_DIST, p));
      const z = gzipSync(body, { level: 9 }).length;
      raw += body.length;
      gz += z;
      log(`first page script ${p}: ${body.length} bytes, ${z} gzipped`);
    }
    const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
    console.log(`\nMachine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${N.toLocaleString('en')} series; ${REPS} loads, each in a new browser context.\n`);
    console.log('| measure | median | slowest | goal |');
    console.log('| --- | ---: | ---: | --- |');
    console.log(`| first thumbnail drawn | ${median(first).toFixed(0)} ms | ${Math.max(...first).toFixed(0)} ms | |`);
    console.log(`| every thumbnail of the first screen drawn (${median(counts)} cards) | **${median(screen).toFixed(0)} ms** | ${Math.max(...screen).toFixed(0)} ms | < 1,500 ms |`);
    console.log(`| frame while scrolling through all ${N.toLocaleString('en')} series, p50 / p95 / max (${scroll.dom} cards in the DOM) | ${scroll.p50.toFixed(1)} / ${scroll.p95.toFixed(1)} / ${scroll.max.toFixed(1)} ms | | |`);
    console.log(`| jump to the middle, to its thumbnails drawn | ${scroll.jump.toFixed(0)} ms | | |`);
    console.log(`| JavaScript of the first page (${scripts.size} files) | **${kb(gz)} gzipped** (${kb(raw)} raw) | | < 400 KB |`);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    if (!args.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

await main();
