import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DCMTK_ENV, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { writeSyntheticCt } from '../../../dicom/src/__fixtures__/synthetic-ct.ts';
import { freePort, killHard, startServerProcess, type ServerProcess } from '../__fixtures__/server-process.ts';

let home: string | undefined;
const servers: ServerProcess[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await killHard(s);
  if (home) await rm(home, { recursive: true, force: true });
});

describe.skipIf(skipDicomTools)('DICOM ingest is durable (kill -9 of a real server during C-STORE)', () => {
  it('loses no acknowledged instance and keeps no partial file', { timeout: 120_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-dicom-crash-'));
    const { files, sops } = await writeSyntheticCt(join(home, 'data'), 400, 3);
    const dicomPort = String(await freePort());
    const env = { TESSERA_HOME: join(home, 'home'), TESSERA_RUNNERS: 'process', DICOM_PORT: dicomPort, TESSERA_SERIES_QUIET_SECONDS: '1' };
    const a = await startServerProcess(env);
    servers.push(a);

    // storescu reports each C-STORE response; the server is killed once some have been acknowledged.
    const scu = spawn('storescu', ['-v', '-aec', 'TESSERA', '127.0.0.1', dicomPort, ...files], { env: DCMTK_ENV });
    let out = '';
    let acked = 0;
    const killed = new Promise<void>((resolve) => {
      const onData = (d: Buffer): void => {
        out += d.toString();
        acked = (out.match(/Received Store Response \(Success\)/g) ?? []).length;
        if (acked >= 60) {
          scu.stdout.off('data', onData);
          scu.stderr.off('data', onData);
          void killHard(a).then(resolve);
        }
      };
      scu.stdout.on('data', onData);
      scu.stderr.on('data', onData);
    });
    await killed;
    await new Promise((r) => scu.once('exit', r));
    const acknowledged = (out.match(/Received Store Response \(Success\)/g) ?? []).length;
    expect(acknowledged).toBeGreaterThanOrEqual(60);
    expect(acknowledged).toBeLessThan(400);

    const b = await startServerProcess(env);
    servers.push(b);
    const res = await fetch(`${b.url}/api/series?limit=10`);
    const body = (await res.json()) as { items: { series_instance_uid: string; instances: number; study_instance_uid: string }[] };
    expect(body.items).toHaveLength(1);
    const stored = body.items[0]!.instances;
    // Everything acknowledged is there (at most the one in flight when killed is there too).
    expect(stored).toBeGreaterThanOrEqual(acknowledged);
    expect(stored).toBeLessThanOrEqual(acknowledged + 1);
    const qido = (await (await fetch(`${b.url}/dicom-web/studies/${body.items[0]!.study_instance_uid}/instances`)).json()) as Record<string, { Value: string[] }>[];
    const found = new Set(qido.map((x) => x['00080018']!.Value[0]));
    for (const sop of sops.slice(0, acknowledged)) expect(found.has(sop), sop).toBe(true);
    // Each indexed instance's file is complete and readable.
    const first = await fetch(`${b.url}/dicom-web/studies/${body.items[0]!.study_instance_uid}/series/${body.items[0]!.series_instance_uid}/instances/${sops[acknowledged - 1]}/metadata`);
    expect(first.status).toBe(200);

    // The rest can be sent again; the resent ones that were stored count once.
    const again = spawn('storescu', ['-aec', 'TESSERA', '127.0.0.1', dicomPort, ...files], { env: DCMTK_ENV });
    let againOut = '';
    again.stdout.on('data', (d: Buffer) => (againOut += d.toString()));
    again.stderr.on('data', (d: Buffer) => (againOut += d.toString()));
    expect(await new Promise((r) => again.once('exit', r)), againOut).toBe(0);
    expect(againOut).not.toMatch(/Store Failed|Error|Warning/i);
    const after = (await (await fetch(`${b.url}/api/series?limit=10`)).json()) as { items: { instances: number }[] };
    const rows = (await (await fetch(`${b.url}/dicom-web/studies/${body.items[0]!.study_instance_uid}/instances`)).json()) as unknown[];
    expect(rows.length).toBe(400);
    expect(after.items[0]!.instances).toBe(400);
  });
});
