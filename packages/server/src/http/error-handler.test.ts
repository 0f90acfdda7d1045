import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { clientErrorHandler, frameworkErrors, installErrorHandler, MAX_PARAM_LENGTH } from './error-handler.ts';

/** A Fastify server with Tessera's error handling and a logger whose lines are kept. */
async function server() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = Fastify({ logger: { level: 'info', stream }, routerOptions: { maxParamLength: MAX_PARAM_LENGTH }, frameworkErrors, clientErrorHandler });
  installErrorHandler(app);
  app.get('/boom/:id', async () => {
    throw new RangeError('Maximum call stack size exceeded');
  });
  app.get('/image/:id', async (_req, reply) => {
    reply.type('image/png');
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', 'instance 1.2.3 cannot be served as pixels: the pixel data is truncated');
  });
  await app.ready();
  return { app, lines };
}

describe('the error handler', () => {
  it('answers a bug 500 in the error format and logs it at error level with its route', async () => {
    const { app, lines } = await server();
    const r = await app.inject({ method: 'GET', url: '/boom/7' });
    expect(r.statusCode).toBe(500);
    expect(r.json()).toEqual({ error: { code: 'TESSERA_INTERNAL', message: 'internal error: Maximum call stack size exceeded', details: [] } });
    const logged = lines.filter((l) => l.level === 50);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ route: 'GET /boom/:id', msg: 'unexpected error: Maximum call stack size exceeded' });
    await app.close();
  });

  it('answers an error as JSON even when the handler had set another type, and does not log a user error as one', async () => {
    const { app, lines } = await server();
    const r = await app.inject({ method: 'GET', url: '/image/1', headers: { accept: 'image/png' } });
    expect(r.statusCode).toBe(406);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.json().error.code).toBe('TESSERA_NOT_ACCEPTABLE');
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
    await app.close();
  });

  it("answers the router's refusals (a broken percent-encoding, a path parameter too long) 400 in the error format", async () => {
    const { app } = await server();
    const bad = await app.inject({ method: 'GET', url: '/boom/%ZZ' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringMatching(/^the path \/boom\/%ZZ is not a valid URL: a % must start a percent-encoded UTF-8 byte/) });
    const long = await app.inject({ method: 'GET', url: `/boom/${'9'.repeat(5000)}` });
    expect(long.statusCode).toBe(400);
    expect(long.json().error.message).toMatch(/^the path \/boom\/9{194}\.\.\. \(5006 characters\) has a component longer than 100 characters/);
    await app.close();
  });
});
