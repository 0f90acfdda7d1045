import { accessSync, constants, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { arch, platform, release } from 'node:os';
import { delimiter, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sql, type Kysely } from '@tessera/db';
import { PLATFORM_VERSION } from '@tessera/model';
import { platformRoutes, type SystemReport } from '@tessera/api';
import type { ServerConfig } from '../config.ts';
import { serve } from '../http/serve-route.ts';
import type { DockerReport } from '../workflows/task-runners.ts';
import type { DiskUsage } from './disk-usage.ts';

export interface SystemRoutesOptions {
  config: ServerConfig;
  db: Kysely<object>;
  runners: { name: string; detail: string }[];
  runnerNotes: string[];
  docker: DockerReport;
  dicomPort: () => number | undefined;
  publicUrl: () => string;
  startedAt: number;
  disk: DiskUsage;
}

/** Programs the platform or its built-in extensions use, looked up on PATH once. */
const TOOLS: { name: string; used_for: string }[] = [
  { name: 'python3', used_for: 'process operators of the built-in extensions (collect-metadata, ...) and application templates' },
  { name: 'jupyter-notebook', used_for: 'the built-in jupyter-notebook application' },
  { name: 'storescu', used_for: 'dcmtk: sending DICOM to the platform from this machine (a client tool; the server does not need it)' },
  { name: 'docker', used_for: 'the Docker CLI (the server talks to the engine over its socket and does not need it)' },
];

/** GET /api/system: which runners and components were found, disk use, versions, uptime. */
export async function systemRoutes(app: FastifyInstance, opts: SystemRoutesOptions): Promise<void> {
  const { config } = opts;
  let sqliteVersion: string | undefined;
  let tools: SystemReport['components']['tools'] | undefined;

  serve(app, platformRoutes.system, async (request) => {
    if (request.query.wait && (opts.disk.current().folders === null || opts.disk.current().computing)) await opts.disk.refresh();
    sqliteVersion ??= (await sql<{ v: string }>`select sqlite_version() as v`.execute(opts.db)).rows[0]!.v;
    tools ??= TOOLS.map((t) => {
      const path = onPath(t.name);
      return { name: t.name, found: path !== null, path, used_for: t.used_for };
    });
    const fs = await statfs(config.home);
    const dbFile = join(config.home, 'tessera.db');
    const dbBytes = ['', '-wal', '-shm'].reduce((n, suffix) => n + sizeOrZero(dbFile + suffix), 0);
    const dicom = await sql<{ bytes: number | null; series: number; instances: number | null }>`select sum(size_bytes) as bytes, count(*) as series, sum(num_instances) as instances from dicom_series`.execute(opts.db);
    const d = dicom.rows[0]!;
    const usage = opts.disk.current();
    const wanted = config.runners === 'auto' ? ['docker', 'process'] : config.runners;
    const port = opts.dicomPort();
    return {
      version: { tessera: PLATFORM_VERSION, node: process.version, sqlite: sqliteVersion, platform: platform(), arch: arch(), os_release: release() },
      started_at: new Date(opts.startedAt).toISOString(),
      uptime_s: Math.round((Date.now() - opts.startedAt) / 100) / 10,
      home: config.home,
      runners: opts.runners.map((r) => ({ name: r.name, detail: r.detail })),
      runner_notes: opts.runnerNotes,
      components: {
        process: { available: wanted.includes('process') },
        docker: { available: opts.docker.available, version: opts.docker.version, socket: opts.docker.socket, reason: opts.docker.available ? null : opts.docker.wanted ? opts.docker.reason : 'not asked for (TESSERA_RUNNERS)' },
        kubernetes: { configured: false, reason: 'this Tessera has no Kubernetes runner yet' },
        dimse: { enabled: config.dicomPort !== 'off', ae_title: config.dicomAeTitle, host: config.host, port: port ?? null },
        dicomweb: { path: '/dicom-web', url: `${opts.publicUrl()}/dicom-web`, project_path: '/projects/{project}/dicom-web' },
        tools,
      },
      disk: {
        filesystem: { path: config.home, total_bytes: fs.blocks * fs.bsize, free_bytes: fs.bfree * fs.bsize, available_bytes: fs.bavail * fs.bsize },
        database: { path: dbFile, bytes: dbBytes },
        dicom: { path: join(config.home, 'dicom'), bytes: Number(d.bytes ?? 0), series: Number(d.series), instances: Number(d.instances ?? 0), source: 'index' as const },
        folders: usage.folders,
        computed_at: usage.computed_at,
        duration_ms: usage.duration_ms,
        computing: usage.computing,
      },
    };
  });
}

function sizeOrZero(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}
