import { defineOperator, defineWorkflow } from '@tessera/sdk';

// Forgot `export default`.
export const workflow = defineWorkflow({ id: 'named-only' });
workflow.task(defineOperator({ name: 'noop', builtin: 'noop' }));
