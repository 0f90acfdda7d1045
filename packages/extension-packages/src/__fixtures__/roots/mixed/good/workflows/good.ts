import { defineOperator, defineWorkflow } from '@tessera/sdk';

const count = defineOperator({ name: 'count', level: 'batch', process: { command: ['node', '-e', 'console.log(1)'] } });

const workflow = defineWorkflow({ id: 'good-workflow', title: 'Counts' });
workflow.task(count);
export default workflow;
