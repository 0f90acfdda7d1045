import { PLATFORM_OPERATORS } from '@tessera/model';
import { defineOperator, type Operator } from './workflow.ts';

/**
 * get-input: places each selected series' DICOM files (from the dataset or the
 * identifiers of data_form) in `batch/<series>/<outputDir>/`. Downstream tasks take
 * it as their `input` and find the files under OPERATOR_IN_DIR in each batch element.
 */
export function getInput(options: { name?: string; outputDir?: string } = {}): Operator {
  return defineOperator({
    name: options.name ?? PLATFORM_OPERATORS.getInput,
    title: 'Get the input series',
    builtin: PLATFORM_OPERATORS.getInput,
    level: 'batch',
    outputDir: options.outputDir ?? PLATFORM_OPERATORS.getInput,
  });
}

/**
 * put-result: stores the DICOM files the input task wrote (under every
 * `batch/<series>/<input dir>/` and `<input dir>/`) back into the run's project,
 * e.g. segmentations next to their source series. They join `dataset` if given,
 * else the run's dataset, else today's import dataset.
 */
export function putResult(options: { name?: string; dataset?: string } = {}): Operator {
  return defineOperator({
    name: options.name ?? PLATFORM_OPERATORS.putResult,
    title: 'Store the results in the DICOM store',
    builtin: PLATFORM_OPERATORS.putResult,
    level: 'batch',
    ...(options.dataset ? { builtinParams: { dataset: options.dataset } } : {}),
  });
}

/**
 * put-files: copies the files the input task wrote into the project's result
 * bucket, under the run's id, downloadable at `GET /api/results/<run>`.
 */
export function putFiles(options: { name?: string } = {}): Operator {
  return defineOperator({
    name: options.name ?? PLATFORM_OPERATORS.putFiles,
    title: 'Copy the results to the result bucket',
    builtin: PLATFORM_OPERATORS.putFiles,
    level: 'batch',
  });
}

/**
 * launch-app: launches an installed application with the run's data (WORKFLOW_DIR, and
 * this task's OPERATOR_IN_DIR and OPERATOR_OUT_DIR in its environment), and waits until a
 * person marks it complete (`tessera app complete <instance>`); downstream tasks then
 * read what the person saved in its output dir. Kaapana's MITK-flow pattern.
 */
export function launchApp(options: { extension: string; name?: string; params?: Record<string, unknown>; outputDir?: string; timeout?: number }): Operator {
  return defineOperator({
    name: options.name ?? PLATFORM_OPERATORS.launchApp,
    title: `Wait for a person in ${options.extension}`,
    builtin: PLATFORM_OPERATORS.launchApp,
    level: 'batch',
    ...(options.outputDir ? { outputDir: options.outputDir } : {}),
    ...(options.timeout ? { timeout: options.timeout } : {}),
    builtinParams: { extension: options.extension, ...(options.params ? { params: options.params } : {}) },
  });
}
