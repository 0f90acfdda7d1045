import { defineOperator, defineWorkflow } from '@tessera/sdk';

// Exports a factory instead of the workflow itself.
export default function makeWorkflow() {
  const workflow = defineWorkflow({ id: 'from-factory' });
  workflow.task(defineOperator({ name: 'noop', builtin: 'noop' }));
  return workflow;
}
