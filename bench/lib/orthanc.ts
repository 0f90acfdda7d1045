/**
 * Orthanc (Debian's 1.10 with the DICOMweb plugin) as a peer of Tessera's DICOM
 * server: one process per store, with its own folder and ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { peakRssMb } from './proc.ts';

export const ORTHANC_BIN = '/usr/sbin/Orthanc';
export const ORTHANC_DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export interface OrthancOptions {
  /** Storage, index, config and log go here. An existing store in it is opened as it is. */
  dir: string;
  httpPort: number;
  dicomPort: number;
  /** Default ORTHANC. */
  aet?: string;
  /** Merged over the benchmark's configuration (e.g. a Lua script for a test). */
  extraConfig?: Record<string, unknown>;
  /** Default 60 s: a large SQLite index takes a while to open. */
  startTimeoutMs?: number;
}

/** A running Orthanc. */
export interface OrthancHandle {
  /** Base of the REST API, e.g. http://127.0.0.1:18142 */
  url: string;
  /** Base of its DICOMweb API (…/dicom-web), the `<base>` of `<base>/studies`. */
  dicomWebUrl: string;
  dicomPort: number;
  aet: string;
  /** Orthanc's version, as GET /system says. */
  version: string;
  /** The DICOMweb plugin's version, as GET /plugins/dicom-web says. */
  dicomWebVersion: string;
  /** The configuration it was started with, for the report. */
  config: Record<string, unknown>;
  /** Process id, e.g. to read its CPU time from /proc. */
  pid: number | undefined;
  /** Peak resident memory so far (VmHWM), in MB. */
  peakRssMb(): number;
  logTail(): string;
  stop(): Promise<void>;
}

/** True when something already answers on the port: a stray server would answer our requests and skew every figure. */
export async function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts Orthanc and waits until GET /system answers. */
export async function startOrthanc(o: OrthancOptions): Promise<OrthancHandle> {
  if (!existsSync(ORTHANC_BIN)) throw new Error(`${ORTHANC_BIN} is not installed (apt-get install orthanc orthanc-dicomweb)`);
  for (const port of [o.httpPort, o.dicomPort]) {
    if (await portAnswers(port)) throw new Error(`port ${port} is already in use`);
  }
  mkdirSync(o.dir, { recursive: true });
  const aet = o.aet ?? 'ORTHANC';
  const config: Record<string, unknown> = {
    Name: 'tessera-bench',
    StorageDirectory: join(o.dir, 'storage'),
    IndexDirectory: join(o.dir, 'index'),
    // No fsync per file and no zlib: the fastest storage Orthanc offers, as a peer should be set up.
    SyncStorageArea: false,
    StorageCompression: false,
    Plugins: [ORTHANC_DICOMWEB_PLUGIN],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpPort: o.httpPort,
    DicomPort: o.dicomPort,
    DicomAet: aet,
    DicomServerEnabled: true,
    DicomAlwaysAllowStore: true,
    UnknownSopClassAccepted: true,
    ...o.extraConfig,
  };
  const configFile = join(o.dir, 'orthanc.json');
  writeFileSync(configFile, JSON.stringify(config, null, 1));
  const logFile = join(o.dir, 'orthanc.log');
  const log = openSync(logFile, 'a');
  // TCP_NODELAY: DCMTK, inside Orthanc, leaves Nagle on without it, and loopback C-STORE crawls at ~10/s.
  const child = spawn(ORTHANC_BIN, [configFile], { cwd: o.dir, env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const url = `http://127.0.0.1:${o.httpPort}`;
  const logTail = (): string => {
    try {
      return readFileSync(logFile, 'utf8').trim().split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const handle = (version: string, dicomWebVersion: string): OrthancHandle => ({
    url,
    dicomWebUrl: `${url}/dicom-web`,
    dicomPort: o.dicomPort,
    aet,
    version,
    dicomWebVersion,
    config,
    pid: child.pid,
    peakRssMb: () => peakRssMb(child.pid),
    logTail,
    stop: () => stopChild(child, () => exited),
  });
  const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`Orthanc exited while starting:\n${logTail()}`);
    const system = await getJson<{ Version?: string }>(`${url}/system`);
    if (system?.Version) {
      const plugin = await getJson<{ Version?: string }>(`${url}/plugins/dicom-web`);
      if (!plugin?.Version) {
        await stopChild(child, () => exited);
        throw new Error(`Orthanc started without its DICOMweb plugin (${ORTHANC_DICOMWEB_PLUGIN}):\n${logTail()}`);
      }
      // The DICOM port opens a little after the REST API: a C-STORE sent too early is refused.
      while (!(await portAnswers(o.dicomPort))) {
        if (exited || Date.now() > deadline) throw new Error(`Orthanc's DICOM port ${o.dicomPort} did not open:\n${logTail()}`);
        await sleep(50);
      }
      return handle(system.Version, plugin.Version);
    }
    if (Date.now() > deadline) {
      await stopChild(child, () => exited);
      throw new Error(`Orthanc did not answer GET /system in time:\n${logTail()}`);
    }
    await sleep(100);
  }
}

async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const r = await fetch(url);
    return r.ok ? ((await r.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM (Orthanc closes its index cleanly), SIGKILL after 30 s. */
export async function stopChild(child: ChildProcess, hasExited: () => boolean): Promise<void> {
  if (hasExited()) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await done;
  clearTimeout(timer);
}
