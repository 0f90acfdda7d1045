import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import { validateDagSpec, type DagSpec } from '@tessera/model';
import { BuiltinRunner, CORE_BUILTINS } from '../runners/builtin/builtin-runner.ts';
import { ProcessRunner } from '../runners/process/process-runner.ts';
import type { Runner } from '../runners/runner.ts';
import { DagScheduler, type SchedulerOptions } from '../scheduler/dag-scheduler.ts';
import type { PoolLimits } from '../scheduler/resource-pool.ts';
import { workflowMigrations } from '../store/workflow-migrations.ts';
import { WorkflowStore } from '../store/workflow-store.ts';
import type { WorkflowTables } from '../store/workflow-tables.ts';

export const PROJECT = { id: 'p-admin', name: 'admin' };

export interface TestEngine {
  home: string;
  db: Kysely<WorkflowTables>;
  scheduler: DagScheduler;
  /** Simulates a server restart on the same home and DB file. */
  restart: (options?: { graceful?: boolean }) => Promise<DagScheduler>;
  close: () => Promise<void>;
}

/** A real scheduler over a real SQLite file in a temp dir, with process and built-in runners. */
export async function createTestEngine(
  options: { limits?: Partial<PoolLimits>; runners?: (homeId: string) => Runner[]; extra?: Partial<SchedulerOptions> } = {},
): Promise<TestEngine> {
  const home = await mkdtemp(join(tmpdir(), 'tessera-engine-'));
  const homeId = `test-${home}`;
  let db = openDatabase<WorkflowTables>({ file: join(home, 'tessera.db') });
  await migrate(db as Kysely<unknown>, workflowMigrations);
  let runners: Runner[] = [];
  const make = (): DagScheduler => {
    runners = options.runners?.(homeId) ?? [new BuiltinRunner(CORE_BUILTINS), new ProcessRunner({ homeId, killGraceSeconds: 1 })];
    return new DagScheduler({
      store: new WorkflowStore(db),
      home,
      runners,
      limits: { parallelism: 8, ramMb: 16_000, gpuMemMb: 0, ...options.limits },
      ...options.extra,
    });
  };
  const engine: TestEngine = {
    home,
    db,
    scheduler: make(),
    restart: async ({ graceful = true } = {}) => {
      if (graceful) {
        await engine.scheduler.close();
        for (const r of runners) await r.close();
      }
      engine.scheduler.removeAllListeners();
      await db.destroy();
      db = openDatabase<WorkflowTables>({ file: join(home, 'tessera.db') });
      engine.db = db;
      engine.scheduler = make();
      await engine.scheduler.start();
      return engine.scheduler;
    },
    close: async () => {
      await engine.scheduler.close();
      for (const r of runners) await r.close();
      await db.destroy();
      await rm(home, { recursive: true, force: true });
    },
  };
  await engine.scheduler.start();
  return engine;
}

type TaskInput = Record<string, unknown> & { id: string };

/** Builds a validated spec of shell tasks: `sh: "script"` becomes a process command. */
export function shellDag(id: string, tasks: (TaskInput & { sh?: string })[], extra: Record<string, unknown> = {}): DagSpec {
  return validateDagSpec({
    spec_version: 1,
    id,
    workflow_form: { type: 'object', properties: { message: { type: 'string' } } },
    data_form: { type: 'object' },
    ...extra,
    tasks: tasks.map(({ sh, ...t }) => ({
      operator: t.id,
      output_dir: t.id,
      ...(sh !== undefined ? { process: { command: ['sh', '-c', sh] } } : {}),
      ...t,
    })),
  });
}
