import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { BuiltinContext, BuiltinOperator, RunConf } from '@tessera/engine';
import { importDatasetName, type DicomService } from '@tessera/dicom';
import { PLATFORM_OPERATORS, seriesIdsOf, TesseraError } from '@tessera/model';
import { filesUnder } from '../dicom/files-under.ts';
import type { ScopedCredentials } from '../auth/scoped-credentials.ts';
import type { ResultBuckets } from '../results/result-buckets.ts';

/** The check of a run's rights that built-in operators make before they act on data. */
export type RunRights = Pick<ScopedCredentials, 'requireRunRole'>;

/**
 * The run's configuration as the platform keeps it, not conf/conf.json: a task of the run
 * may have rewritten that file (to name another project, whose series get-input would
 * then read, or whose bucket put-files would write).
 */
async function confOf(ctx: BuiltinContext): Promise<RunConf> {
  return ctx.launch.conf;
}

/**
 * The folders a task reads: `batch/<series>/<input_dir>` for each series, and `<input_dir>`
 * at batch level; each checked to lie in the workflow dir (see {@link staysInWorkflowDir}).
 */
async function inputDirs(ctx: BuiltinContext, conf: RunConf, inputDir: string, operator: string): Promise<string[]> {
  const dirs = [...seriesIdsOf(conf.data_form).map((uid) => join(ctx.launch.workflowDir, 'batch', uid, inputDir)), join(ctx.launch.workflowDir, inputDir)];
  for (const dir of dirs) await staysInWorkflowDir(ctx.launch.workflowDir, dir, operator);
  return dirs;
}

/**
 * Refuses a folder of the workflow dir that a symbolic link leads elsewhere. The run's
 * tasks write the workflow dir (a sandboxed task too); the platform's operators run as
 * the server, and following such a link would read another project's bucket into this
 * run's results, or write this run's inputs over the server's files.
 */
async function staysInWorkflowDir(workflowDir: string, dir: string, operator: string): Promise<void> {
  const root = await realpath(workflowDir);
  // The deepest part of the path that exists: what is missing is made by mkdir under it.
  for (let probe = dir; ; probe = dirname(probe)) {
    let real: string;
    try {
      real = await realpath(probe);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && probe !== dirname(probe)) continue;
      throw err;
    }
    if (real === root || real.startsWith(root + sep)) return;
    throw new Error(
      `${operator}: ${relative(workflowDir, dir)}/ leads out of the run's workflow dir (a symbolic link to ${real}, made by a task of the run); ` +
        'the platform does not follow it: write results as plain files and folders',
    );
  }
}

/**
 * The data operators: the platform operators that move a run's data between the DICOM
 * store, the workflow dir and the result bucket, available to every workflow through
 * the SDK (`getInput`, `putResult`, `putFiles`):
 * - get-input: copies each selected series' DICOM files to batch/<series>/<out_dir>/.
 * - put-result: stores the DICOM files a workflow produced back into the run's project.
 * - put-files: copies result files into the project's result bucket (downloadable over HTTP).
 *
 * They act with the rights of the run's starter in the run's project, as a task's token
 * does over HTTP: each needs what the matching route needs (reading series, uploading,
 * writing results: a scientist), and fails naming the role otherwise.
 */
export function dataOperators(dicom: DicomService, buckets: ResultBuckets, rights: RunRights): Record<string, BuiltinOperator> {
  return {
    [PLATFORM_OPERATORS.getInput]: async (ctx) => {
      const conf = await confOf(ctx);
      await rights.requireRunRole(ctx.launch, 'scientist', 'read its series', conf.project_form.name);
      const ids = seriesIdsOf(conf.data_form);
      if (ids.length === 0) {
        await ctx.log('get-input: no series selected (data_form has no dataset_name or identifiers); nothing to do');
        return 'skipped';
      }
      const outDir = ctx.launch.task.output_dir;
      let files = 0;
      for (const uid of ids) {
        if (ctx.signal.aborted) throw new Error('stopped');
        const rows = await dicom.db
          .selectFrom('dicom_instances')
          .select(['path', 'sop_uid'])
          .where('project_id', '=', conf.project_form.id)
          .where('series_uid', '=', uid)
          .orderBy('instance_number')
          .orderBy('sop_uid')
          .execute();
        if (rows.length === 0) throw new TesseraError('TESSERA_NOT_FOUND', `series ${uid} is not in project "${conf.project_form.name}" (deleted since the run started?)`);
        const dir = join(ctx.launch.workflowDir, 'batch', uid, outDir);
        await staysInWorkflowDir(ctx.launch.workflowDir, dir, 'get-input');
        await mkdir(dir, { recursive: true });
        for (const r of rows) {
          const target = join(dir, `${r.sop_uid}.dcm`);
          // What a task left at that name goes first (a link would be written through), and the copy must make a new file.
          await rm(target, { force: true });
          // A copy, not a link: an operator that writes into its input must never change the store.
          await copyFile(dicom.store.filePath(r.path), target, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
        }
        files += rows.length;
        await ctx.log(`get-input: ${uid}: ${rows.length} file(s) -> batch/${uid}/${outDir}/`);
      }
      await ctx.log(`get-input: ${ids.length} series, ${files} file(s)`);
    },

    [PLATFORM_OPERATORS.putResult]: async (ctx) => {
      const conf = await confOf(ctx);
      const inputDir = ctx.launch.task.input_dir;
      if (!inputDir) throw new Error('put-result needs an input dir (the task that wrote the DICOM files)');
      await rights.requireRunRole(ctx.launch, 'scientist', 'store DICOM files in it', conf.project_form.name);
      const datasetName = typeof ctx.params.dataset === 'string' ? ctx.params.dataset : typeof conf.data_form.dataset_name === 'string' ? conf.data_form.dataset_name : importDatasetName();
      const target = await dicom.target(conf.project_form.id, datasetName);
      let stored = 0;
      const rejected: string[] = [];
      for (const dir of await inputDirs(ctx, conf, inputDir, 'put-result')) {
        for (const file of await filesUnder(dir)) {
          if (ctx.signal.aborted) throw new Error('stopped');
          const name = relative(ctx.launch.workflowDir, file);
          const r = await dicom.importFile(target, await readFile(file), name);
          if (r.status === 'rejected') rejected.push(`${name}: ${r.error?.message}`);
          else stored++;
          await ctx.log(`put-result: ${name}: ${r.status}${r.error ? ` (${r.error.message})` : ` as series ${r.series_instance_uid}`}`);
        }
      }
      if (rejected.length > 0) throw new Error(`${rejected.length} file(s) are not valid DICOM instances: ${rejected.slice(0, 3).join('; ')}`);
      if (stored === 0) {
        await ctx.log(`put-result: no files in ${inputDir}/ to store`);
        return 'skipped';
      }
      await ctx.log(`put-result: ${stored} instance(s) stored in project "${conf.project_form.name}", dataset "${datasetName}"`);
    },

    [PLATFORM_OPERATORS.putFiles]: async (ctx) => {
      const conf = await confOf(ctx);
      const inputDir = ctx.launch.task.input_dir;
      if (!inputDir) throw new Error('put-files needs an input dir (the task that wrote the result files)');
      await rights.requireRunRole(ctx.launch, 'scientist', 'store result files in it', conf.project_form.name);
      let n = 0;
      let bytes = 0;
      for (const dir of await inputDirs(ctx, conf, inputDir, 'put-files')) {
        for (const file of await filesUnder(dir)) {
          if (ctx.signal.aborted) throw new Error('stopped');
          const name = relative(ctx.launch.workflowDir, file);
          await buckets.put(conf.project_form.id, ctx.launch.runId, name, file);
          bytes += (await stat(file)).size;
          n++;
        }
      }
      if (n === 0) {
        await ctx.log(`put-files: no files in ${inputDir}/`);
        return 'skipped';
      }
      await ctx.log(`put-files: ${n} file(s), ${bytes} bytes -> result bucket of project "${conf.project_form.name}" (GET /api/results/${ctx.launch.runId})`);
    },
  };
}
