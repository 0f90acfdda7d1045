import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DicomSenders } from '@tessera/api';
import { runCli, type CliResult } from './__fixtures__/run-cli.ts';
import { startTestServer, type TestServer } from '../../server/src/__fixtures__/test-server.ts';

// `tessera projects senders` against a real server: what it shows, and each way it changes
// the list (what the list does to C-STORE is in packages/server/src/dicom/dicom-senders.test.ts).

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  expect((await server.call('POST', '/api/projects', { name: 'ward' })).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await server?.close();
});

function tessera(args: string[]): Promise<CliResult> {
  return runCli({ url: server.url, args });
}

async function policy(): Promise<DicomSenders> {
  return (await server.call('GET', '/api/projects/ward/dicom-senders')).body as DicomSenders;
}

describe('tessera projects senders', () => {
  it('shows an open project, its AE title, and how to restrict it', async () => {
    const r = await tessera(['projects', 'senders', 'ward']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      'project          ward\ncalled AE title  kp-ward\nsenders          anyone who reaches the DICOM port (no list; restrict it with --allow <address or network>, or --refuse-unknown)\n',
    );
  });

  it('adds addresses and networks with a note, then removes one; the others keep their notes', async () => {
    const add = await tessera(['projects', 'senders', 'ward', '--allow', '127.0.0.1', '--allow', '10.0.0.0/8,FD00::/8', '--note', 'lab']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('senders          only the addresses below; others are refused (A-ASSOCIATE-RJ)');
    expect(add.stdout).toMatch(/ADDRESS\s+NOTE\n127\.0\.0\.1\s+lab\n10\.0\.0\.0\/8\s+lab\nfd00::\/8\s+lab/);
    const more = await tessera(['projects', 'senders', 'ward', '--allow', '192.0.2.7/32', '--note', 'PACS', '--remove', '10.0.0.0/8', '--json']);
    expect(more.code, more.stderr).toBe(0);
    expect((JSON.parse(more.stdout) as DicomSenders).allowed).toEqual([
      { address: '127.0.0.1', note: 'lab' },
      { address: 'fd00::/8', note: 'lab' },
      { address: '192.0.2.7', note: 'PACS' },
    ]);
    // Allowing a listed address again (as typed, /32 and all) changes only its note.
    expect((await tessera(['projects', 'senders', 'ward', '--allow', '192.0.2.7/32', '--note', 'old PACS'])).code).toBe(0);
    expect((await policy()).allowed.map((a) => `${a.address} ${a.note}`)).toEqual(['127.0.0.1 lab', 'fd00::/8 lab', '192.0.2.7 old PACS']);
  });

  it("prints the server's refusal of a bad address with the entry at fault, exits 1 and changes nothing", async () => {
    const before = await policy();
    const r = await tessera(['projects', 'senders', 'ward', '--allow', '10.1.2.3/16']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: an allowed sender is not valid, first allowed\[3\]\.address: "10\.1\.2\.3\/16" is not valid: .*the network is 10\.1\.0\.0\/16/);
    expect(r.stderr).toContain('  allowed[3].address: "10.1.2.3/16" is not valid');
    expect(await policy()).toEqual(before);
    const missing = await tessera(['projects', 'senders', 'ward', '--remove', '10.9.9.9']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: 10.9.9.9 is not on the list of project ward (it has 127.0.0.1, fd00::/8, 192.0.2.7); nothing was changed\n');
  });

  it('empties the list and refuses unknown senders, then accepts them again', async () => {
    const closed = await tessera(['projects', 'senders', 'ward', '--clear', '--refuse-unknown']);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toContain('senders          none: unknown senders are refused and no address is allowed; others are refused (A-ASSOCIATE-RJ)');
    expect(await policy()).toMatchObject({ allowed: [], refuse_unknown: true, enforced: true });
    expect((await tessera(['projects', 'senders', 'ward', '--accept-unknown'])).code).toBe(0);
    expect(await policy()).toMatchObject({ allowed: [], refuse_unknown: false, enforced: false });
  });

  it('refuses contradictory or incomplete options before asking the server (exit 2)', async () => {
    const both = await tessera(['projects', 'senders', 'ward', '--refuse-unknown', '--accept-unknown']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--refuse-unknown.*cannot be used with.*--accept-unknown/);
    const note = await tessera(['projects', 'senders', 'ward', '--note', 'x']);
    expect(note.code).toBe(2);
    expect(note.stderr).toBe('error: --note is the note of the addresses given with --allow: add --allow <address>\n');
  });
});
