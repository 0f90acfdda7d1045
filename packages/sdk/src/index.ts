export * from './workflow.ts';
export type { DagSpec, TaskSpec, TriggerRule } from '@tessera/model';
export * from './platform-operators.ts';
export { defineTaskOperator, type TaskOperatorDefinition } from './task-operator.ts';
export type { ProcessingContainer, TaskTemplate, TaskFile } from '@tessera/model';
