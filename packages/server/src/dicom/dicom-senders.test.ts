import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DCMTK_ENV, pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { loadConfig } from '../config.ts';
import { createTessera, type Tessera } from '../create-tessera.ts';

// Who may send DICOM to a project (issue 14), with dcmtk's storescu and echoscu against the
// real server. The listener binds loopback, so every sender here is 127.0.0.1 (or
// ::ffff:127.0.0.1): a sender that is not allowed is one whose project lists other addresses.

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: DCMTK_ENV, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

const CT = pydicomFile('CT_small.dcm');

describe.skipIf(skipDicomTools)('C-STORE sender allowlist (storescu, echoscu against the real server)', () => {
  let s: TestServer;
  let port: string;
  const warnings: string[] = [];

  const store = (calledAe: string, callingAe = 'SCANNER1', p = port, file = CT) => run('storescu', ['-aet', callingAe, '-aec', calledAe, '127.0.0.1', p, file]);
  const seriesIn = async (project: string): Promise<number> => (await s.call('GET', `/api/series?project=${project}`)).body.total as number;
  const put = (project: string, body: unknown) => s.call('PUT', `/api/projects/${project}/dicom-senders`, body);

  /** The refusals are logged as warnings; the test server logs nothing, so listen at the source. */
  const listen = (t: Tessera): void => {
    const log = t.dicom.service.options.log;
    const warn = log.warn.bind(log);
    log.warn = (m: string) => {
      warnings.push(m);
      warn(m);
    };
  };

  beforeAll(async () => {
    s = await startTestServer();
    port = String(s.tessera.dicomPort);
    for (const name of ['lab', 'guarded', 'closed', 'open']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
    listen(s.tessera);
  }, 60_000);
  afterAll(async () => s?.close());

  it('answers a project without a policy as open, and names the AE titles that reach it', async () => {
    const r = await s.call('GET', '/api/projects/open/dicom-senders');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ project: 'open', refuse_unknown: false, refuse_unknown_everywhere: false, enforced: false, allowed: [], called_ae_titles: ['kp-open'], updated_at: null });
    expect((await s.call('GET', '/api/projects/admin/dicom-senders')).body.called_ae_titles).toEqual(['kp-admin', 'TESSERA']);
    expect((await s.call('GET', '/api/projects/nope/dicom-senders')).status).toBe(404);
  });

  it('takes a store from an allowed address (127.0.0.1 in a list with a network)', async () => {
    const r = await put('lab', { refuse_unknown: false, allowed: [{ address: '10.0.0.0/8', note: 'hospital' }, { address: ' 127.0.0.1 ', note: 'this machine' }] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.allowed).toEqual([{ address: '10.0.0.0/8', note: 'hospital' }, { address: '127.0.0.1', note: 'this machine' }]);
    expect(r.body.enforced).toBe(true);
    const sent = await store('kp-lab');
    expect(sent.code, sent.out).toBe(0);
    expect(await seriesIn('lab')).toBe(1);
    expect((await run('echoscu', ['-aec', 'kp-lab', '127.0.0.1', port])).code).toBe(0);
  });

  it('refuses an address the list does not allow with A-ASSOCIATE-RJ, stores nothing, and logs address, calling and called AE', async () => {
    expect((await put('guarded', { refuse_unknown: false, allowed: [{ address: '10.9.9.9' }] })).status).toBe(200);
    const sent = await store('kp-guarded', 'kp-ct-study');
    expect(sent.code).not.toBe(0);
    expect(sent.out).toMatch(/Association Rejected/i);
    expect(sent.out).toMatch(/Rejected Permanent/i);
    expect(sent.out).toMatch(/Calling AE Title Not Recognized/i);
    expect(await seriesIn('guarded')).toBe(0);
    // The dataset the calling AE title names was not created either.
    expect((await s.call('GET', '/api/datasets/ct-study?project=guarded')).status).toBe(404);
    const echo = await run('echoscu', ['-aec', 'kp-guarded', '127.0.0.1', port]);
    expect(echo.code).not.toBe(0);
    expect(echo.out).toMatch(/Calling AE Title Not Recognized/i);
    const line = warnings.find((w) => w.includes('"kp-guarded"'));
    expect(line).toBe(
      'DICOM association from 127.0.0.1 (calling AE "kp-ct-study", called AE "kp-guarded") refused: sender 127.0.0.1 may not send to project "guarded": ' +
        "it is not in the project's 1 allowed sender address(es); allow it with `tessera projects senders guarded --allow 127.0.0.1` if it should send",
    );
  });

  it('refuses every sender of a project with refuse_unknown and an empty list', async () => {
    const r = await put('closed', { refuse_unknown: true, allowed: [] });
    expect(r.body).toMatchObject({ refuse_unknown: true, enforced: true, allowed: [] });
    const sent = await store('kp-closed');
    expect(sent.out).toMatch(/Calling AE Title Not Recognized/i);
    expect(await seriesIn('closed')).toBe(0);
    expect(warnings.some((w) => w.includes('"closed": the project refuses unknown senders and allows no address yet'))).toBe(true);
  });

  it('leaves the other projects as they were: anyone may send to a project without a policy and to the default project', async () => {
    const open = await store('kp-open');
    expect(open.code, open.out).toBe(0);
    expect(await seriesIn('open')).toBe(1);
    const admin = await store('TESSERA');
    expect(admin.code, admin.out).toBe(0);
    expect(await seriesIn('admin')).toBe(1);
  });

  it('opens a project again with an empty list and refuse_unknown off', async () => {
    expect((await put('closed', { refuse_unknown: false, allowed: [] })).body.enforced).toBe(false);
    const sent = await store('kp-closed');
    expect(sent.code, sent.out).toBe(0);
    expect(await seriesIn('closed')).toBe(1);
  });

  it('answers 400 naming each bad entry and changes nothing', async () => {
    const r = await put('lab', { refuse_unknown: true, allowed: [{ address: '10.0.0.0/8' }, { address: '10.1.2.3/16' }, { address: '300.1.1.1' }, { address: 'pacs.example.org' }] });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('TESSERA_INVALID_REQUEST');
    expect(r.body.error.message).toMatch(/^3 allowed senders are not valid, first allowed\[1\]\.address: "10\.1\.2\.3\/16" is not valid: .* the network is 10\.1\.0\.0\/16 .*nothing was changed$/);
    expect(r.body.error.details.map((d: { where: string }) => d.where)).toEqual(['allowed[1].address', 'allowed[2].address', 'allowed[3].address']);
    // A body that is not of the contract's shape never reaches the check.
    expect((await put('lab', { allowed: [] })).status).toBe(400);
    expect((await put('lab', { refuse_unknown: false, allowed: ['10.0.0.1'] })).status).toBe(400);
    const now = await s.call('GET', '/api/projects/lab/dicom-senders');
    expect(now.body.allowed.map((a: { address: string }) => a.address)).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(now.body.refuse_unknown).toBe(false);
  });

  describe('after a restart on a dual-stack socket, with TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1', () => {
    let again: Tessera;
    let url: string;
    beforeAll(async () => {
      await s.tessera.close();
      // '::ffff:127.0.0.1' is an IPv6 socket on loopback: a sender on 127.0.0.1 arrives as ::ffff:127.0.0.1.
      again = await createTessera({ ...s.tessera.config, host: '::ffff:127.0.0.1', dicomRefuseUnknownSenders: true });
      // The HTTP side listens there too; it is reached as 127.0.0.1 (a URL writes the mapped address in hex, ::ffff:7f00:1).
      url = (await again.listen()).replace('[::ffff:127.0.0.1]', '127.0.0.1');
      port = String(again.dicomPort);
      listen(again);
    }, 60_000);
    afterAll(async () => {
      await again?.close();
      await rm(s.home, { recursive: true, force: true });
    });
    const get = async (project: string) => (await fetch(`${url}/api/projects/${project}/dicom-senders`)).json() as Promise<Record<string, unknown>>;

    it('keeps the lists (stored, loaded at start), and 127.0.0.1 allows a peer seen as ::ffff:127.0.0.1', async () => {
      expect(await get('lab')).toMatchObject({ allowed: [{ address: '10.0.0.0/8', note: 'hospital' }, { address: '127.0.0.1', note: 'this machine' }], refuse_unknown_everywhere: true });
      const sent = await store('kp-lab', 'SCANNER1', port, pydicomFile('MR_small.dcm'));
      expect(sent.code, sent.out).toBe(0);
      const series = (await (await fetch(`${url}/api/series?project=lab`)).json()) as { total: number };
      expect(series.total).toBe(2);
    });

    it('refuses every project that does not list the sender, the default one included; a listed one still refuses others', async () => {
      expect(await get('open')).toMatchObject({ enforced: true, refuse_unknown: false, refuse_unknown_everywhere: true, allowed: [] });
      for (const ae of ['kp-open', 'TESSERA', 'kp-guarded']) {
        const sent = await store(ae, 'SCANNER1', port);
        expect(sent.out, ae).toMatch(/Calling AE Title Not Recognized/i);
      }
      // The peer was seen as the mapped address, and the hint names the IPv4 one to allow.
      expect(warnings).toContain(
        'DICOM association from ::ffff:127.0.0.1 (calling AE "SCANNER1", called AE "TESSERA") refused: sender ::ffff:127.0.0.1 may not send to project "admin": ' +
          'TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1 refuses unknown senders and the project allows no address yet; allow it with `tessera projects senders admin --allow 127.0.0.1` if it should send',
      );
    });
  });
});

describe('TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS', () => {
  it('is off by default, on with 1 or true, and anything else stops the start', () => {
    expect(loadConfig({}).dicomRefuseUnknownSenders).toBe(false);
    expect(loadConfig({ TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS: '1' }).dicomRefuseUnknownSenders).toBe(true);
    expect(loadConfig({ TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS: 'true' }).dicomRefuseUnknownSenders).toBe(true);
    expect(() => loadConfig({ TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS: 'yes' })).toThrow('TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS="yes" must be 1 or 0 (true or false)');
  });
});
