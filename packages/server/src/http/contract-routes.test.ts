import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allRoutes, projectRoutes } from '@tessera/api';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { requireContracts, serve } from './serve-route.ts';

describe('the routes the server declares', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s.close();
  });

  it('are every route of the contract, each once', () => {
    const missing = allRoutes.filter((r) => !s.tessera.app.hasRoute({ method: r.method, url: r.url })).map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
  });

  it('answer what the contract says, which the OpenAPI document shows', async () => {
    const doc = (await s.call('GET', '/api/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(doc.paths).flatMap((p) => Object.keys(p));
    expect(operations.length).toBe(allRoutes.length);
    expect(Object.keys(doc.paths)).toContain('/projects/{project}/dicom-web/studies/{study}/series/{series}/metadata');
  });
});

describe('requireContracts', () => {
  it('stops a server from declaring an API route without a contract, and lets a contract route and the UI through', async () => {
    const app = Fastify();
    requireContracts(app);
    serve(app, projectRoutes.list, async () => ({ items: [], total: 0, limit: 1, offset: 0 }));
    app.get('/assets/x.js', async () => '');
    expect(() => app.get('/api/sneaky', async () => ({}))).toThrow('GET /api/sneaky is an API route without a contract: declare it in packages/api and serve it with serve()');
    expect(() => app.post('/projects/p1/dicom-web/studies', async () => ({}))).toThrow(/without a contract/);
    await app.close();
  });
});
