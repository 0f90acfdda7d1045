import { defineTaskOperator, defineWorkflow } from '@tessera/sdk';

// The same processing container, as a third party's image would be used: only its name and
// template identifiers. Tessera reads /processing-container.json from the image when the
// extension is installed (after building, loading or pulling it) and expands the tasks then.
const IMAGE = 'tessera-ext/kaapana-task-example:0.1.0';

const generate = defineTaskOperator({ image: IMAGE, template: 'generate', env: { COUNT: '2' }, timeout: 600 });
const summarize = defineTaskOperator({ image: IMAGE, template: 'summarize', timeout: 600 });

const workflow = defineWorkflow({
  id: 'kaapana-task-from-image',
  title: 'Kaapana Task API example (templates read from the image)',
  description: 'The kaapana-task-example workflow without a copy of processing-container.json: the templates come from the image at install.',
});

const numbers = workflow.task(generate);
workflow.task(summarize, { iochannels: [{ from: numbers, output: 'numbers', input: 'numbers' }] });

export default workflow;
