import { defineOperator, defineWorkflow } from '@tessera/sdk';

const greet = defineOperator({
  name: 'greet',
  title: 'Write the greeting',
  level: 'batch',
  process: { command: ['node', 'scripts/greet.mjs'], files: ['scripts/greet.mjs'] },
  timeout: 60,
});

const transform = defineOperator({
  name: 'transform',
  title: 'Transform the greeting',
  level: 'batch',
  process: { command: ['node', 'scripts/transform.mjs'], files: ['scripts/transform.mjs'] },
  retries: 1,
  retryDelay: 1,
  timeout: 60,
});

const summarize = defineOperator({
  name: 'summarize',
  title: 'Summarize all outputs',
  level: 'batch',
  process: { command: ['node', 'scripts/summarize.mjs'], files: ['scripts/summarize.mjs'] },
  timeout: 60,
});

const workflow = defineWorkflow({
  id: 'hello-world',
  title: 'Hello world',
  description: 'Greets, transforms the greeting in two parallel branches (one operator, two parallel_ids) and writes a summary.',
  workflowForm: {
    type: 'object',
    properties: {
      message: { type: 'string', title: 'Message', default: 'Hello, Tessera!', minLength: 1, maxLength: 200 },
      repeat: { type: 'integer', title: 'Repeat', default: 1, minimum: 1, maximum: 10 },
    },
    additionalProperties: false,
  },
});

const greeting = workflow.task(greet);
const upper = workflow.task(transform, { parallelId: 'upper', input: greeting, env: { MODE: 'upper' } });
const reverse = workflow.task(transform, { parallelId: 'reverse', input: greeting, env: { MODE: 'reverse' } });
workflow.task(summarize, { upstream: [upper, reverse], triggerRule: 'all_done' });

export default workflow;
