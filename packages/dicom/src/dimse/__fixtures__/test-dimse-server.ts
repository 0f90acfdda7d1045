import { DimseServer, type AssociationInfo, type DimseServerOptions, type StoreRequest } from '../dimse-server.ts';

/** The dataset of a request that was held in memory; throws when it was spooled to a file. */
export function inMemory(dataset: StoreRequest['dataset']): Buffer {
  if (!Buffer.isBuffer(dataset)) throw new Error(`the dataset was spooled to ${dataset.path}, not held in memory`);
  return dataset;
}

/** A DimseServer on a free loopback port that records what it was handed and what it logged. */
export interface TestDimseServer {
  server: DimseServer;
  port: number;
  stores: StoreRequest[];
  ends: Array<{ info: AssociationInfo & { context?: unknown }; how: 'released' | 'aborted' | 'closed' }>;
  logs: Array<{ level: 'info' | 'warn' | 'error'; msg: string }>;
  /** Log lines of one level, joined, for `toContain`/`toMatch`. */
  logText(level?: 'info' | 'warn' | 'error'): string;
}

/** Starts a server that accepts everything and stores successfully unless `overrides` say otherwise. */
export async function startTestDimseServer(overrides: Partial<DimseServerOptions> = {}): Promise<TestDimseServer> {
  const stores: StoreRequest[] = [];
  const ends: TestDimseServer['ends'] = [];
  const logs: TestDimseServer['logs'] = [];
  const onStore = overrides.onStore;
  const server = new DimseServer({
    host: '127.0.0.1',
    port: 0,
    aeTitle: 'TESSERA',
    log: {
      info: (msg) => logs.push({ level: 'info', msg }),
      warn: (msg) => logs.push({ level: 'warn', msg }),
      error: (msg) => logs.push({ level: 'error', msg }),
    },
    onAssociationEnd: (info, how) => ends.push({ info, how }),
    ...overrides,
    onStore: async (req) => {
      stores.push(req);
      return onStore ? onStore(req) : { status: 0 };
    },
  });
  const { port } = await server.listen();
  return {
    server,
    port,
    stores,
    ends,
    logs,
    logText: (level) => logs.filter((line) => level === undefined || line.level === level).map((line) => line.msg).join('\n'),
  };
}
