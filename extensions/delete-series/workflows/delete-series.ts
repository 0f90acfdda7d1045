import { defineOperator, defineWorkflow } from '@tessera/sdk';

const deleteSeries = defineOperator({
  name: 'delete-series',
  title: 'Delete the selected series',
  level: 'batch',
  process: { command: ['node', 'scripts/delete-series.mjs'], files: ['scripts/delete-series.mjs'] },
  retries: 1,
  retryDelay: 2,
  timeout: 3600,
});

const workflow = defineWorkflow({
  id: 'delete-series',
  title: 'Delete series',
  description: 'Deletes every selected series (files, index entries, dataset memberships). This cannot be undone.',
  // No get-input, but nothing to do without series: a run without any fails, saying so.
  needsData: true,
});
workflow.task(deleteSeries);

export default workflow;
