import { defineOperator, defineWorkflow, getInput, putFiles } from '@tessera/sdk';

const dcm2json = defineOperator({
  name: 'dcm2json',
  title: 'DICOM metadata to JSON, one file per series',
  level: 'batch',
  process: { command: ['node', 'scripts/dcm2json.mjs'], files: ['scripts/dcm2json.mjs'] },
  timeout: 3600,
});

const zipJson = defineOperator({
  name: 'zip-json',
  title: 'Zip the JSON files',
  level: 'batch',
  process: { command: ['node', 'scripts/zip-json.mjs'], files: ['scripts/zip-json.mjs'] },
  timeout: 600,
});

const workflow = defineWorkflow({
  id: 'collect-metadata',
  title: 'Collect metadata',
  description: 'All top-level attributes of every instance of the selected series as JSON, zipped into the result bucket (metadata.zip).',
  workflowForm: {
    type: 'object',
    properties: {
      instances: { type: 'string', title: 'Instances per series', enum: ['first', 'all'], default: 'first', description: 'Metadata of the first instance of each series, or of all of them.' },
    },
    additionalProperties: false,
  },
});

const input = workflow.task(getInput());
const json = workflow.task(dcm2json, { input });
const zipped = workflow.task(zipJson, { input: json });
workflow.task(putFiles(), { input: zipped });

export default workflow;
