import { runnerConformance } from '../runner-conformance.ts';
import { ProcessRunner } from './process-runner.ts';
import { findProcessesByEnv } from './proc-table.ts';

const homeId = `test-${process.pid}`;

runnerConformance('process', {
  create: async () => new ProcessRunner({ homeId, killGraceSeconds: 1 }),
  shellTask: (script) => ({ process: { command: ['sh', '-c', script] } }),
  leftovers: async (key) => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value === key).length,
});
