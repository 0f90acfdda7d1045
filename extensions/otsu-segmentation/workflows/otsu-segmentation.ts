import { defineOperator, defineWorkflow, getInput, putResult } from '@tessera/sdk';

const IMAGE = 'tessera-ext/otsu-segmentation:0.1.0';

const otsu = defineOperator({
  name: 'otsu',
  title: 'Otsu threshold of each series, as a DICOM Segmentation',
  container: { image: IMAGE },
  // Container only: it needs numpy, scikit-image and pydicom, which are in the
  // image. Without a Docker engine the task fails at once, saying so.
  // Level batch_element (the default): one seg.dcm per series, in
  // batch/<series>/otsu/; one container handles every series of the batch.
  level: 'batch_element',
  timeout: 3600,
  resources: { ramMb: 4000 },
});

const workflow = defineWorkflow({
  id: 'otsu-segmentation',
  title: 'Otsu segmentation',
  description: 'Thresholds every selected series with Otsu\'s method and stores the result as a DICOM Segmentation (SEG) next to its source series, in the same study.',
  workflowForm: {
    type: 'object',
    properties: {
      smoothing_sigma: {
        type: 'number',
        title: 'Smoothing (sigma, pixels)',
        minimum: 0,
        maximum: 20,
        default: 0,
        description: 'Gaussian smoothing within each slice before the threshold; 0: none.',
      },
    },
    additionalProperties: false,
  },
});

const input = workflow.task(getInput());
const seg = workflow.task(otsu, { input });
workflow.task(putResult(), { input: seg });

export default workflow;
