import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

/** An open event stream with a token: the data lines it got so far, and whether it ended. */
class Stream {
  readonly received: { type: string; project?: string; name?: string }[] = [];
  ended = false;
  readonly #abort = new AbortController();

  static async open(url: string, token: string): Promise<Stream> {
    const s = new Stream();
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: s.#abort.signal });
    expect(res.status).toBe(200);
    void s.#read(res.body!);
    await waitFor(async () => (s.received.some((e) => e.type === 'ready') ? true : undefined), 5000, 'the stream to be ready');
    return s;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data) this.received.push(JSON.parse(data.slice(6)) as Stream['received'][number]);
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
  }

  names(): string[] {
    return this.received.filter((e) => e.type === 'dataset').map((e) => `${e.project}/${e.name}`);
  }

  close(): void {
    this.#abort.abort();
  }
}

describe('the event stream follows changes of access while it is open', () => {
  let s: TestServer;
  const streams: Stream[] = [];
  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
    for (const name of ['lab', 'other']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
  });
  afterAll(async () => {
    for (const st of streams) st.close();
    await s?.close();
  });

  const publish = (project: string, name: string): void => s.tessera.events.publish({ type: 'dataset', project, name, state: 'changed' });

  it("stops sending a project's events to a member removed from it, at once", async () => {
    const sci = await s.userToken('ev-sci', { lab: 'scientist', other: 'scientist' });
    const all = await Stream.open(`${s.url}/api/events?types=dataset`, sci);
    const lab = await Stream.open(`${s.url}/api/events?types=dataset&project=lab`, sci);
    streams.push(all, lab);
    publish('lab', 'one');
    publish('other', 'one');
    await waitFor(async () => (all.names().length === 2 && lab.names().length === 1 ? true : undefined), 5000, 'the first events');

    expect((await s.call('DELETE', '/api/projects/lab/members/ev-sci')).status).toBe(204);
    publish('lab', 'two');
    publish('other', 'two');
    await waitFor(async () => (all.names().includes('other/two') ? true : undefined), 5000, "the other project's event");
    expect(all.names()).toEqual(['lab/one', 'other/one', 'other/two']);
    // The stream of that project alone ends.
    await waitFor(async () => (lab.ended ? true : undefined), 5000, 'the project stream to end');
    expect(lab.names()).toEqual(['lab/one']);
  });

  it('ends a stream whose token is revoked', async () => {
    const admin = s.token!;
    const created = await s.call('POST', '/api/tokens', { name: 'short-lived' }, admin);
    expect(created.status).toBe(201);
    const st = await Stream.open(`${s.url}/api/events?types=dataset`, created.body.token as string);
    streams.push(st);
    publish('lab', 'three');
    await waitFor(async () => (st.names().includes('lab/three') ? true : undefined), 5000, 'an event');
    expect((await s.call('DELETE', `/api/tokens/${created.body.id as string}`, undefined, admin)).status).toBe(204);
    await waitFor(async () => (st.ended ? true : undefined), 5000, 'the stream to end');
    publish('lab', 'four');
    expect(st.names()).not.toContain('lab/four');
  });
});
