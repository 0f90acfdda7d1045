import { defineOperator, defineWorkflow, getInput, putFiles } from '@tessera/sdk';

const IMAGE = 'tessera-ext/dcm2nifti:0.1.0';

const dcm2nifti = defineOperator({
  name: 'dcm2nifti',
  title: 'Convert each series to NIfTI with dcm2niix',
  container: { image: IMAGE },
  // Container only: the conversion needs dcm2niix, which is in the image and not
  // necessarily on the host. Without a Docker engine the task fails at once, saying so.
  //
  // Level batch_element (the default): the outputs are per series, in
  // batch/<series>/nifti/, which is where put-files looks and what keeps the
  // NIfTI files of different series apart. The level only decides where the
  // outputs go: either way one container runs for the task and converts every
  // series of the batch (as Kaapana's operators do), so there is no container
  // start per series to save by choosing 'batch'.
  level: 'batch_element',
  outputDir: 'nifti',
  timeout: 3600,
  resources: { ramMb: 2000 },
});

const workflow = defineWorkflow({
  id: 'dcm2nifti',
  title: 'DICOM to NIfTI',
  description: 'Converts every selected series to NIfTI with dcm2niix (one .nii.gz and its JSON sidecar per volume) and puts the files into the result bucket.',
  workflowForm: {
    type: 'object',
    properties: {
      compress: { type: 'boolean', title: 'Compress', default: true, description: 'Write gzipped NIfTI (.nii.gz); off: plain .nii.' },
    },
    additionalProperties: false,
  },
});

const input = workflow.task(getInput());
const nifti = workflow.task(dcm2nifti, { input });
workflow.task(putFiles(), { input: nifti });

export default workflow;
