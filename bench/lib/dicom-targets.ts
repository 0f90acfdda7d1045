/**
 * The systems of the DICOM benchmark: each start() gives a server on a store
 * folder, fresh or as left by a previous start, behind one Target shape.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStorescp } from './dcmtk-peers.ts';
import type { Ports, SystemId } from './dicom-ingest-options.ts';
import { httpRequest } from './dicomweb-load.ts';
import { portAnswers, startOrthanc } from './orthanc.ts';
import { peakRssMb } from './proc.ts';
import { TesseraServer } from './tessera-server.ts';

export interface Target {
  id: SystemId;
  dicomPort: number;
  aet: string;
  /** DICOMweb base (…/dicom-web); storescp has none. */
  web?: string;
  pid?: number;
  /** storescp: files written so far. */
  received?(): number;
  peakRssMb(): number;
  stop(): Promise<void>;
}

/** Starts the systems and keeps what they tell about themselves for the report. */
export class DicomTargets {
  /** Targets started and not yet stopped: stopped on a signal or a crash. */
  readonly live = new Set<Target>();
  /** Version of each component, in the order they became known. */
  readonly versions = new Map<string, string>();
  /** How a system was started (its command line), when the report shows it. */
  readonly how = new Map<string, string>();
  readonly #repo: string;
  readonly #ports: Ports;

  constructor(o: { repo: string; ports: Ports }) {
    this.#repo = o.repo;
    this.#ports = o.ports;
  }

  async start(id: SystemId, home: string): Promise<Target> {
    const ports = this.#ports;
    let t: Target;
    if (id === 'orthanc') {
      const o = await startOrthanc({ dir: home, httpPort: ports.orthancHttp, dicomPort: ports.orthancDicom });
      this.versions.set('Orthanc', `${o.version} (DICOMweb plugin ${o.dicomWebVersion})`);
      t = { id, dicomPort: o.dicomPort, aet: o.aet, web: o.dicomWebUrl, pid: o.pid, peakRssMb: o.peakRssMb, stop: o.stop };
    } else if (id === 'storescp') {
      const s = await startStorescp({ dir: join(home, 'in'), port: ports.storescp });
      this.how.set('storescp', s.command.replace(join(home, 'in'), '<empty folder>'));
      t = { id, dicomPort: s.port, aet: s.aet, pid: s.pid, received: s.countFiles, peakRssMb: () => peakRssMb(s.pid), stop: s.stop };
    } else {
      t = await this.#startTessera(home);
    }
    this.live.add(t);
    const stop = t.stop;
    t.stop = async () => {
      this.live.delete(t);
      await stop();
    };
    return t;
  }

  /** Stops every target still running. */
  async stopAll(): Promise<void> {
    for (const t of [...this.live]) await t.stop();
  }

  async #startTessera(home: string): Promise<Target> {
    const ports = this.#ports;
    mkdirSync(join(home, 'extensions'), { recursive: true });
    const server = await TesseraServer.start({
      repo: this.#repo,
      home,
      extensionsDir: join(home, 'extensions'),
      port: ports.tesseraHttp,
      parallelism: 2,
      logFile: `${home}.log`,
      env: { DICOM_PORT: String(ports.tesseraDicom) },
    });
    const fail = async (why: string): Promise<never> => {
      await server.stop();
      throw new Error(`${why}\n${server.logTail()}`);
    };
    const deadline = Date.now() + 30_000;
    while (!(await portAnswers(ports.tesseraDicom))) {
      if (Date.now() > deadline) await fail(`the Tessera server answers /api/health, but nothing listens on DICOM_PORT=${ports.tesseraDicom} after 30 s (a server without its DICOM listener?)`);
      await sleep(50);
    }
    const web = `${server.url}/dicom-web`;
    const probe = await httpRequest(`${web}/studies?limit=1`, { headers: { accept: 'application/dicom+json' } }).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }));
    if (probe.status !== 200 && probe.status !== 204) await fail(`GET ${web}/studies answered ${probe.status}: ${probe.body.toString('utf8').slice(0, 200)}`);
    return { id: 'tessera', dicomPort: ports.tesseraDicom, aet: 'TESSERA', web, pid: server.pid, peakRssMb: () => server.peakRssMb(), stop: () => server.stop() };
  }
}
