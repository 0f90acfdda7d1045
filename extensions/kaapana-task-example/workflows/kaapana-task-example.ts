import { readFileSync } from 'node:fs';
import { defineTaskOperator, defineWorkflow } from '@tessera/sdk';

// The image's /processing-container.json, from beside its build context (the Dockerfile copies it to the image root).
const processingContainer = JSON.parse(readFileSync(new URL('../processing/processing-container.json', import.meta.url), 'utf8'));

const IMAGE = 'tessera-ext/kaapana-task-example:0.1.0';

const generate = defineTaskOperator({ image: IMAGE, processingContainer, template: 'generate', timeout: 600 });
const summarize = defineTaskOperator({ image: IMAGE, processingContainer, template: 'summarize', timeout: 600 });

const workflow = defineWorkflow({
  id: 'kaapana-task-example',
  title: 'Kaapana Task API example',
  description: 'generate writes items of numbers to its output channel "numbers"; summarize reads them on its input channel "numbers" and writes a summary per item.',
});

const numbers = workflow.task(generate);
workflow.task(summarize, { iochannels: [{ from: numbers, output: 'numbers', input: 'numbers' }] });

export default workflow;
