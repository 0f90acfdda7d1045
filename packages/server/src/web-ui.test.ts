import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webUiRoutes } from './web-ui.ts';

describe('the web UI routes', () => {
  let dir: string;
  let app: FastifyInstance;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-web-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>UI</title>');
    await writeFile(join(dir, 'assets', 'main-abc123.js'), 'console.log(1)');
    app = Fastify();
    await app.register(webUiRoutes, { dir });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers client routes with index.html, not cached; hashed assets are immutable', async () => {
    for (const path of ['/', '/datasets', '/runs/abc', '/applications', '/applications/', '/extensions?kind=workflow', '/viewer/1.2.840.113619.2.1/2.25.1804176503']) {
      const res = await app.inject({ url: path });
      expect(res.statusCode, path).toBe(200);
      expect(res.body, path).toContain('<title>UI</title>');
      expect(res.headers['cache-control'], path).toBe('no-cache');
    }
    const asset = await app.inject({ url: '/assets/main-abc123.js' });
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await app.inject({ url: '/assets/gone-123.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/favicon.ico' })).statusCode).toBe(404);
  });

  it('never answers the API, DICOMweb or the application proxy with the page', async () => {
    for (const path of ['/api/nope', '/dicom-web/studies', '/projects/p/dicom-web/studies', '/applications/project/p/release/i/']) {
      const res = await app.inject({ url: path });
      expect(res.statusCode, path).toBe(404);
      expect(res.body, path).not.toContain('<title>UI</title>');
    }
  });

  it('does not serve files outside its folder', async () => {
    const res = await app.inject({ url: '/..%2f..%2fetc%2fpasswd' });
    expect(res.body).not.toContain('root:');
  });

  it('answers a path no file of the UI can have with 404, never a 500 that shows where it is installed', async () => {
    for (const url of ['/assets/main%00.js', '/index.html%00', '/assets/main-abc123.js/more', `/assets/${'a'.repeat(300_000)}.js`, `/${'x/'.repeat(3000)}y.png`]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url.slice(0, 40)).toBe(404);
      expect(res.body).not.toContain(dir);
    }
  });
});
