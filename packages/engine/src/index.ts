export * from './runners/runner.ts';
export * from './runners/exit-status.ts';
export * from './runners/process/process-runner.ts';
// The launchers of local processes (ADR 17), shared by tasks and applications.
export { LaunchError, LauncherPool, type LauncherChoice, type Launched, type LaunchExit } from './runners/process/launcher-pool.ts';
// The one home of process-group kills, for every package that starts local process groups (tasks, applications).
export { isAlive, killGroup, processStartTime } from './runners/process/proc-table.ts';
// One sandbox for every local process the platform starts (tasks, applications).
export * from './runners/process/sandbox.ts';
export * from './runners/builtin/builtin-runner.ts';
export * from './operator-contract.ts';
export * from './scheduler/dag-scheduler.ts';
export { retryDelayMs } from './scheduler/decisions/task-outcome.ts';
export * from './scheduler/resource-pool.ts';
export * from './scheduler/retention.ts';
export * from './store/workflow-store.ts';
export * from './store/workflow-tables.ts';
export * from './store/workflow-migrations.ts';
export * from './runners/docker/docker-runner.ts';
export * from './runners/docker/docker-detect.ts';
export * from './runners/docker/image-pull.ts';
export { scaleTargetBytes, matchingFileSizes, withScaledRam } from './scheduler/ram-scale.ts';
