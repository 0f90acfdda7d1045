import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allRoutes, type RouteContract } from '@tessera/api';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

/**
 * The authorization matrix: every route of the server's route table (the contract,
 * packages/api) called by each kind of caller, and the answer checked against what the
 * route's access rule says. A new route cannot ship without a rule (the contract test
 * refuses it), and its rule is enforced here for every caller.
 */

type Caller = 'anonymous' | 'outsider' | 'scientist' | 'pi' | 'admin';
type Outcome = 'unauthenticated' | 'forbidden' | 'hidden' | 'reached';

const CALLERS: Caller[] = ['anonymous', 'outsider', 'scientist', 'pi', 'admin'];

/** What the rule says a caller gets: the outsider is a member of another project only. */
export function expectedOutcome(route: RouteContract, caller: Caller): Outcome {
  const a = route.access;
  if (a.who === 'public') return 'reached';
  if (caller === 'anonymous') return 'unauthenticated';
  if (a.who === 'signed-in') return 'reached';
  if (a.who === 'admin') return caller === 'admin' ? 'reached' : 'forbidden';
  // A member's route, called naming project "lab" (or in the default project, where the scientist and PI have the same roles).
  if (caller === 'outsider') return 'hidden';
  if (caller === 'scientist') return a.role === 'scientist' ? 'reached' : 'forbidden';
  return 'reached';
}

interface Answer {
  status: number;
  text: string;
}

/** One request as it is; a stream (events, a followed log) is judged by its head. */
function send(base: URL, method: string, path: string, token: string | undefined, body: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        host: base.hostname, port: base.port, method, path, timeout: 15_000,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const done = (): void => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          res.destroy();
          return done();
        }
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', done);
        res.on('error', done);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** How access control answered, told apart from a handler's own 401, 403 and 404 by code and message. */
function outcomeOf(a: Answer, hiddenWhat: RegExp): Outcome {
  let error: { code?: string; message?: string } | undefined;
  try {
    error = (JSON.parse(a.text) as { error?: { code?: string; message?: string } }).error;
  } catch {
    error = undefined;
  }
  if (a.status === 401 && error?.message?.startsWith('sign in first')) return 'unauthenticated';
  if (a.status === 403 && error?.code === 'TESSERA_FORBIDDEN') return 'forbidden';
  if (a.status === 404 && error?.code === 'TESSERA_NOT_FOUND' && hiddenWhat.test(error.message ?? '')) return 'hidden';
  return 'reached';
}

describe('the authorization matrix: every route x anonymous, a member of another project, a scientist, a principal investigator, an admin', () => {
  let s: TestServer;
  let tokens: Record<Caller, string | undefined>;
  let runId: string;
  let jobId: string;
  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
    for (const name of ['lab', 'other']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
    tokens = {
      anonymous: undefined,
      outsider: await s.userToken('outsider', { other: 'principal-investigator' }),
      scientist: await s.userToken('scientist', { lab: 'scientist', admin: 'scientist' }),
      pi: await s.userToken('pi', { lab: 'principal-investigator', admin: 'principal-investigator' }),
      admin: s.token,
    };
    await writeShellExtension(s.extRoot, 'matrix-ext', [{ id: 'matrix-wf', tasks: [{ id: 'work', level: 'batch', sh: 'echo matrix' }] }]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await s.call('POST', '/api/jobs', { workflow: 'matrix-wf', project: 'lab' }, tokens.scientist);
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    jobId = job.body.id as string;
    runId = job.body.runs[0].id as string;
    await waitFor(async () => ['success', 'failed'].includes((await s.call('GET', `/api/runs/${runId}`)).body.state), 20_000, 'the run to end');
  }, 60_000);
  afterAll(async () => s?.close());

  it('answers every route as its access rule says, for every caller', { timeout: 120_000 }, async () => {
    const base = new URL(s.url);
    const mismatches: string[] = [];
    const counts: Record<Outcome, number> = { unauthenticated: 0, forbidden: 0, hidden: 0, reached: 0 };
    for (const route of allRoutes) {
      // The route's project is "lab" wherever a request names one; what else it names does not exist (nothing is changed).
      const params: Record<string, string> = {
        project: 'lab', name: route.url.startsWith('/api/projects/') ? 'lab' : 'no-such-thing', id: route.url.startsWith('/api/runs') ? runId : route.url.startsWith('/api/jobs') ? jobId : 'no-such-id',
        run: runId, task: 'work', user: 'no-such-user', uid: '1.2.3.4', study: '1.2.3', series: '1.2.3.4', instance: '1.2.3.4.5', frames: '1', tag: '7FE00010', version: '0.0.0', '*': 'no/such/file',
      };
      const path = route.url.replace(/:([A-Za-z0-9_]+)|\*/g, (m, p: string | undefined) => encodeURIComponent(params[p ?? '*'] ?? 'x').replace(/%2F/g, '/'));
      const query = route.project.in === 'query' ? `?${route.project.name}=lab` : '';
      const body = route.method === 'GET' || route.method === 'DELETE' && route.project.in !== 'body' ? undefined : route.project.in === 'body' ? { [route.project.name]: 'lab' } : {};
      const hiddenWhat = route.project.in === 'resource' ? new RegExp(`^${route.project.resource} "`) : /^project "(lab|admin)" does not exist/;
      for (const caller of CALLERS) {
        const answer = await send(base, route.method, `${path}${query}`, tokens[caller], body);
        const got = outcomeOf(answer, hiddenWhat);
        counts[got]++;
        const want = expectedOutcome(route, caller);
        if (got !== want) mismatches.push(`${route.method} ${route.url} as ${caller}: expected ${want}, got ${got} (${answer.status} ${answer.text.slice(0, 160)})`);
      }
    }
    console.log(`authorization matrix: ${allRoutes.length} routes x ${CALLERS.length} callers: ${JSON.stringify(counts)}`);
    expect(mismatches).toEqual([]);
    // The matrix exercised every outcome: it would notice a rule that refuses or lets through everyone.
    for (const outcome of Object.keys(counts) as Outcome[]) expect(counts[outcome]).toBeGreaterThan(10);
  });

  it('hides another project from a non-member as if it did not exist, with the same answer', async () => {
    const missing = await s.call('GET', '/api/projects/no-such-project', undefined, tokens.outsider);
    const hidden = await s.call('GET', '/api/projects/lab', undefined, tokens.outsider);
    expect(hidden.status).toBe(404);
    expect(hidden.body.error.message.replaceAll('lab', 'X')).toBe(missing.body.error.message.replaceAll('no-such-project', 'X'));
    const listed = await s.call('GET', '/api/projects', undefined, tokens.outsider);
    expect(listed.body.items.map((p: { name: string }) => p.name)).toEqual(['other']);
    const runs = await s.call('GET', '/api/runs', undefined, tokens.outsider);
    expect(runs.body.items).toEqual([]);
    // A list of every project the caller may see (no project named) answers the outsider with their own only.
    expect((await s.call('GET', '/api/jobs', undefined, tokens.outsider)).body.items).toEqual([]);
    expect((await s.call('GET', '/api/applications', undefined, tokens.outsider)).status).toBe(200);
    const labRuns = await s.call('GET', '/api/runs', undefined, tokens.scientist);
    expect(labRuns.body.items.map((r: { id: string }) => r.id)).toContain(runId);
  });
});
