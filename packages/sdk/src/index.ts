export * from './workflow.ts';
export type { DagSpec, TaskSpec, TriggerRule } from '@tessera/model';
export * from './platform-operators.ts';
