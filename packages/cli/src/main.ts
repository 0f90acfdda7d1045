import { Command, InvalidArgumentError, Option } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, CliError } from './api-client.ts';
import { Answers } from './answers.ts';
import { findToken } from './credentials.ts';
import type { AnswerOf, AppInstance, CreateProject, Job, Project, projectRoutes, Run, RunDetail, workflowRoutes } from '@tessera/api';
import {
  datasetsCreateCommand,
  datasetsDeleteCommand,
  datasetsListCommand,
  datasetsMembersCommand,
  datasetsRenameCommand,
  datasetsShowCommand,
  type MembersOptions,
} from './commands/datasets-command.ts';
import { exportCommand, resultsCommand, type ExportOptions, type ResultsOptions } from './commands/export-command.ts';
import { importCommand, type ImportOptions } from './commands/import-command.ts';
import { logsCommand } from './commands/logs-command.ts';
import { runCommand } from './commands/run-command.ts';
import { sendersCommand, type SendersOptions } from './commands/senders-command.ts';
import { seriesDeleteCommand, seriesFacetsCommand, seriesListCommand, seriesShowCommand, type SeriesListOptions } from './commands/series-command.ts';
import { extInitCommand } from './commands/ext-init.ts';
import { duration, printJson, table } from './output.ts';
import { addSeriesFilters, collectList, type SeriesFilterOptions } from './series-filters.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
  return n;
}

function atLeastOne(value: string): number {
  const n = positiveInt(value);
  if (n < 1) throw new InvalidArgumentError('must be 1 or more');
  return n;
}

/** Commander's own usage errors (unknown option, missing argument, bad value) exit 2 like the CLI's; help and --version exit 0. */
function usageExit(err: { exitCode: number }): never {
  process.exit(err.exitCode === 0 ? 0 : 2);
}

/** Builds the `tessera` command line. Each action returns the process exit code. */
export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('Tessera: develop, deploy and run medical-imaging extensions. Talks to a Tessera server over HTTP.')
    .addOption(new Option('--url <url>', 'server URL').env('TESSERA_URL').default('http://localhost:8080'))
    .addOption(new Option('--project <name>', 'project to work in').env('TESSERA_PROJECT').default('admin'))
    .showHelpAfterError('(run with --help for usage)')
    // Before any subcommand is added: they inherit it.
    .exitOverride(usageExit);
  const url = (): string => program.opts<{ url: string }>().url;
  // The token of TESSERA_TOKEN, `tessera login`, or a loopback server's runtime file (credentials.ts).
  const api = (): ApiClient => new ApiClient(url(), findToken(url()));
  /** Runs a command that asks questions (names, passwords), then stops reading stdin. */
  const asking = async (fn: (answers: Answers) => Promise<number>): Promise<number> => {
    const answers = new Answers();
    try {
      return await fn(answers);
    } finally {
      answers.close();
    }
  };
  const access = (): Promise<typeof import('./commands/access-command.ts')> => import('./commands/access-command.ts');
  const auth = (): Promise<typeof import('./commands/auth-command.ts')> => import('./commands/auth-command.ts');
  const project = (): string => program.opts<{ project: string }>().project;
  let exitCode = 0;
  const act = <A extends unknown[]>(fn: (...args: A) => Promise<number | void>) =>
    async (...args: A): Promise<void> => {
      exitCode = (await fn(...args)) ?? 0;
    };

  const projects = program.command('projects').description('list projects, create one, set who may send DICOM to one').option('--json', 'print JSON')
    .action(act(async (o: { json?: boolean }) => {
      const { items } = await api().get<AnswerOf<typeof projectRoutes.list, 200>>('/api/projects');
      if (o.json) return printJson(items);
      console.log(table(['NAME', 'CREATED', 'DESCRIPTION'], items.map((p) => [p.name, p.created_at, p.description])));
    }));
  projects.command('create <name>').description('create a project').option('--description <text>').option('--json', 'print JSON')
    .action(act(async (name: string, o: { description?: string; json?: boolean }) => {
      const p = await api().post<Project>('/api/projects', { name, ...(o.description ? { description: o.description } : {}) } satisfies CreateProject);
      if (o.json) return printJson(p);
      console.log(`created project ${p.name}`);
    }));
  projects.command('members <project>').description("a project's members and their roles").option('--json', 'print JSON')
    .action(act(async (name: string, o: { json?: boolean }) => (await access()).membersListCommand(api(), name, o)));
  projects.command('add-member <project> <user>').description('add a user to a project, or change their role (a principal investigator of the project, or an admin)')
    .addOption(new Option('--role <role>', 'their role in the project').choices(['scientist', 'principal-investigator']).makeOptionMandatory())
    .option('--json', 'print JSON')
    .action(act(async (name: string, user: string, o: { role: 'scientist' | 'principal-investigator'; json?: boolean }) => (await access()).membersAddCommand(api(), name, user, o)));
  projects.command('remove-member <project> <user>').description('remove a user from a project (a principal investigator of the project, or an admin)')
    .action(act(async (name: string, user: string) => (await access()).membersRemoveCommand(api(), name, user)));
  projects.command('senders <project>').description('who may send DICOM (C-STORE) to the project, by source address; --allow, --remove, --clear, --refuse-unknown, --accept-unknown change it')
    .option('--allow <address>', 'add an IPv4/IPv6 address or CIDR network (10.1.2.3, 10.1.0.0/16, fd00::/8); repeatable or comma-separated', collectList)
    .option('--note <text>', 'the note of the addresses given with --allow ("CT scanner 2")')
    .option('--remove <address>', 'take an address or network off the list; repeatable or comma-separated', collectList)
    .option('--clear', 'empty the list first (with --allow: replace it)')
    .addOption(new Option('--refuse-unknown', 'refuse every address not on the list, even while the list is empty').conflicts('acceptUnknown'))
    .addOption(new Option('--accept-unknown', 'while the list is empty, anyone may send (as without a list)'))
    .option('--json', 'print JSON')
    .action(act(async (name: string, o: SendersOptions & { acceptUnknown?: boolean }, cmd: Command) => {
      const refuseUnknown = o.refuseUnknown ? true : o.acceptUnknown ? false : undefined;
      // `projects` has a --json of its own, which takes the flag wherever it is written.
      const json = o.json ?? cmd.optsWithGlobals<{ json?: boolean }>().json;
      return sendersCommand(api(), name, { ...o, refuseUnknown, json });
    }));

  program.command('workflows [workflow]').description('list the workflows you can run; with a workflow id, its tasks, parameters and task settings (types, choices, defaults)').option('--json', 'print JSON')
    .action(act(async (id: string | undefined, o: { json?: boolean }) => {
      if (id) return (await import('./commands/workflow-show.ts')).workflowShowCommand(api(), id, o);
      const { items, problems } = await api().get<AnswerOf<typeof workflowRoutes.list, 200>>('/api/workflows');
      if (o.json) return printJson(items);
      console.log(table(['WORKFLOW', 'EXTENSION', 'TASKS', 'PARAMETERS', 'TITLE'], items.map((w) => [
        w.id,
        `${w.extension.name}@${w.extension.version}`,
        w.tasks.length,
        Object.keys((w.workflow_form.properties ?? {}) as object).join(',') || '-',
        w.title,
      ])));
      for (const p of problems) console.error(`warning: extension ${p.dir} was not loaded: ${p.message}`);
    }));

  program.command('run <workflow>').description('run a workflow and watch it; exits non-zero when a run fails')
    .option('-f, --form <key=value...>', 'a workflow_form parameter (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('-t, --task-form <task.VAR=value...>', 'a setting of a Task API task, e.g. summarize.STATISTIC=max (repeatable; `tessera workflows <workflow>` lists them)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--dataset <name>', 'run on the series of a dataset')
    .option('--series <uids>', 'run on these SeriesInstanceUIDs (comma-separated)')
    .option('--limit <n>', 'at most n series of the dataset', positiveInt)
    .option('--single-execution', 'one run per series')
    .option('--no-wait', 'return once the job is created')
    .option('--json', 'print the job as JSON at the end')
    .action(act(async (workflow: string, o: { form: string[]; taskForm: string[]; dataset?: string; series?: string; limit?: number; singleExecution?: boolean; wait: boolean; json?: boolean }) =>
      runCommand(api(), workflow, { ...o, project: project() })));

  program.command('runs').description('list runs, newest first')
    .option('--state <states>', 'only these states (comma-separated: queued,running,success,failed,canceled)')
    .option('--workflow <id>', 'only runs of this workflow')
    .option('--job <id>', 'only runs of this job')
    .option('--all-projects', 'runs of every project')
    .option('--limit <n>', 'how many', positiveInt, 20)
    .option('--offset <n>', 'skip this many', positiveInt, 0)
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'print only the run ids, one per line (for scripts)')
    .action(act(async (o: { state?: string; workflow?: string; job?: string; allProjects?: boolean; limit: number; offset: number; json?: boolean; quiet?: boolean }) => {
      const page = await api().get<AnswerOf<typeof workflowRoutes.listRuns, 200>>('/api/runs', {
        project: o.allProjects ? undefined : project(), state: o.state, workflow: o.workflow, job: o.job, limit: o.limit, offset: o.offset,
      });
      if (o.json) return printJson(page);
      if (o.quiet) {
        for (const r of page.items) console.log(r.id);
        return;
      }
      console.log(table(['RUN', 'WORKFLOW', 'STATE', 'TASKS', 'STARTED', 'DURATION', 'PROJECT'], page.items.map((r) => [
        r.id, r.workflow, r.state, `${r.progress.done}/${r.progress.total}`, r.started_at, duration(r.started_at, r.ended_at), r.project,
      ])));
      if (page.total > o.offset + page.items.length) console.error(`(${page.total} runs in all; see more with --offset ${o.offset + page.items.length})`);
    }));

  program.command('show <run>').description('a run with its tasks, their states and reasons').option('--json', 'print JSON')
    .action(act(async (runId: string, o: { json?: boolean }) => {
      const r = await api().get<RunDetail>(`/api/runs/${encodeURIComponent(runId)}`);
      if (o.json) return printJson(r);
      console.log(`${r.id}  ${r.workflow}  ${r.state}  attempt ${r.attempt}  project ${r.project}`);
      // Whose rights its tasks act with: who triggered it (or retried it last), with their role then.
      console.log(`started: ${r.started_by === null ? 'by an arrival trigger (acts as a scientist of the project)' : `by ${r.started_by}${r.started_role ? ` (${r.started_role})` : ''}`}`);
      if (r.reason) console.log(`reason:  ${r.reason}`);
      if (r.workflow_dir) console.log(`outputs: ${r.workflow_dir}`);
      console.log(table(['TASK', 'STATE', 'TRY', 'RUNNER', 'EXIT', 'DURATION', 'REASON'], r.tasks.map((t) => [
        t.id, t.state, t.rerun_reason ? `${t.try_number} (rerun)` : t.try_number, t.runner, t.exit_code, duration(t.started_at, t.ended_at), t.reason,
      ])));
      // A try that ran again because the server stopped while the one before ran: say why.
      for (const t of r.tasks) if (t.rerun_reason) console.log(`rerun of ${t.id}: ${t.rerun_reason}`);
    }));

  program.command('logs <run> [task]').description("print a task's log (or every task's), --follow to stream it live")
    .option('--follow', 'keep streaming until the task (or run) ends')
    .option('--try <n>', 'a given try of the task', positiveInt)
    .option('--attempt <n>', 'a given attempt of the run', positiveInt)
    .action(act(async (run: string, task: string | undefined, o: { follow?: boolean; try?: number; attempt?: number }) => logsCommand(api(), run, task, o)));

  program.command('cancel <id>').description('cancel a run (r-...) or a whole job (j-...)')
    .action(act(async (id: string) => {
      if (id.startsWith('j-')) {
        const job = await api().post<Job>(`/api/jobs/${encodeURIComponent(id)}/cancel`);
        console.log(`job ${job.id}: ${job.runs.map((r) => `${r.id} ${r.state}`).join(', ')}`);
      } else {
        const run = await api().post<Run>(`/api/runs/${encodeURIComponent(id)}/cancel`);
        console.log(`run ${run.id}: ${run.state}`);
      }
    }));

  program.command('retry <run>').description('retry a failed or canceled run: failed tasks run again, successful ones are kept')
    .action(act(async (id: string) => {
      const run = await api().post<Run>(`/api/runs/${encodeURIComponent(id)}/retry`);
      console.log(`run ${run.id}: attempt ${run.attempt} ${run.state}; follow it with: tessera logs ${run.id} --follow`);
    }));

  // ------------------------------------------------------------------ DICOM data
  program.command('import [paths...]').description('upload DICOM files, folders (walked recursively) and .zip archives; exits 1 when any file is rejected')
    .option('--dataset <name>', 'dataset the series join (created if new; default: the day\'s import-YYYY-MM-DD)')
    .addOption(new Option('--sample <name>', 'also import sample data bundled with Tessera (ct: a 16-slice CT phantom)').choices(['ct']))
    .option('--json', 'print the outcome of every file as JSON')
    .addOption(new Option('--parallel <n>', 'requests in flight').argParser(atLeastOne).default(4))
    .addOption(new Option('--batch-files <n>', 'most files in one request').argParser(atLeastOne).default(64).hideHelp())
    .addOption(new Option('--batch-mb <n>', 'most megabytes in one request').argParser(atLeastOne).default(32).hideHelp())
    .action(act(async (paths: string[], o: Omit<ImportOptions, 'project'> & { sample?: string }) => {
      if (paths.length === 0 && !o.sample) throw new CliError('name the files, folders or .zip archives to import (or --sample ct)', { exitCode: 2 });
      if (!o.sample) return importCommand(api(), paths, { ...o, project: project() });
      const dir = await mkdtemp(join(tmpdir(), 'tessera-sample-'));
      try {
        const { writeSample } = await import('@tessera/dicom');
        await writeSample(o.sample, dir);
        return await importCommand(api(), [...paths, dir], { ...o, project: project() });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }));

  const series = program.command('series').description('search the series of the store (filters: `tessera series list --help`); show, delete, count them');
  const seriesList = series.command('list', { isDefault: true }).description('search series (the default of `tessera series`): newest first, filtered')
    .addOption(new Option('--sort <key>', 'sort by').choices(['created_at', 'updated_at', 'study_date', 'patient_name', 'patient_id', 'modality', 'series_description', 'series_number', 'num_instances']))
    .addOption(new Option('--order <order>', 'sort order (default desc)').choices(['asc', 'desc']))
    .option('--limit <n>', 'how many', atLeastOne, 100)
    .option('--offset <n>', 'skip this many', positiveInt, 0)
    .option('--json', 'print JSON');
  addSeriesFilters(seriesList, '--dataset').action(act(async (o: Omit<SeriesListOptions, 'project'>) => seriesListCommand(api(), { ...o, project: project() })));
  series.command('show <uid>').description("a series' attributes, datasets and DICOM attributes").option('--json', 'print JSON')
    .action(act(async (uid: string, o: { json?: boolean }) => seriesShowCommand(api(), uid, { ...o, project: project() })));
  series.command('delete <uids...>').description('delete series: files, index entries, dataset memberships; asks first unless --yes')
    .option('-y, --yes', 'do not ask (needed without a terminal)')
    .option('--json', 'print JSON')
    .action(act(async (uids: string[], o: { yes?: boolean; json?: boolean }) => seriesDeleteCommand(api(), uids, { ...o, project: project() })));
  const facets = series.command('facets').description('how many matching series per modality, body part and manufacturer').option('--json', 'print JSON');
  addSeriesFilters(facets, '--dataset').action(act(async (o: SeriesFilterOptions & { json?: boolean }) => seriesFacetsCommand(api(), { ...o, project: project() })));

  const datasets = program.command('datasets').description('named sets of series: list, create, show, rename, delete; add and remove series');
  datasets.command('list', { isDefault: true }).description('list datasets (the default of `tessera datasets`)')
    .option('-q, --query <text>', 'part of the name')
    .addOption(new Option('--sort <key>', 'sort by (default name)').choices(['name', 'created_at', 'updated_at', 'series_count']))
    .addOption(new Option('--order <order>', 'sort order (default asc)').choices(['asc', 'desc']))
    .option('--limit <n>', 'how many', atLeastOne, 100)
    .option('--offset <n>', 'skip this many', positiveInt, 0)
    .option('--json', 'print JSON')
    .action(act(async (o: { query?: string; sort?: string; order?: string; limit: number; offset: number; json?: boolean }) => datasetsListCommand(api(), { ...o, project: project() })));
  const membersOptions = (cmd: Command): Command =>
    addSeriesFilters(cmd.option('--series <uids...>', 'SeriesInstanceUIDs (space- or comma-separated, repeatable)', collectList), '--in-dataset').option('--json', 'print JSON');
  membersOptions(datasets.command('create <name>').description('create a dataset, empty or with series named by UID and/or by filters').option('--description <text>', 'what it is for'))
    .action(act(async (name: string, o: Omit<MembersOptions, 'project'> & { description?: string }) => datasetsCreateCommand(api(), name, { ...o, project: project() })));
  datasets.command('show <name>').description('a dataset and its series')
    .option('--limit <n>', 'how many series', atLeastOne, 100)
    .option('--offset <n>', 'skip this many series', positiveInt, 0)
    .option('--json', 'print JSON')
    .action(act(async (name: string, o: { limit: number; offset: number; json?: boolean }) => datasetsShowCommand(api(), name, { ...o, project: project() })));
  datasets.command('rename <name> <new-name>').description('rename a dataset').option('--json', 'print JSON')
    .action(act(async (name: string, newName: string, o: { json?: boolean }) => datasetsRenameCommand(api(), name, newName, { ...o, project: project() })));
  datasets.command('delete <name>').description('delete a dataset; its series stay in the store').option('--json', 'print JSON')
    .action(act(async (name: string, o: { json?: boolean }) => datasetsDeleteCommand(api(), name, { ...o, project: project() })));
  membersOptions(datasets.command('add <name>').description('add series to a dataset, by UID (--series) and/or by filters'))
    .action(act(async (name: string, o: Omit<MembersOptions, 'project'>) => datasetsMembersCommand(api(), 'add', name, { ...o, project: project() })));
  membersOptions(datasets.command('remove <name>').description('remove series from a dataset (they stay in the store), by UID (--series) and/or by filters'))
    .action(act(async (name: string, o: Omit<MembersOptions, 'project'>) => datasetsMembersCommand(api(), 'remove', name, { ...o, project: project() })));

  program.command('export').description('download a series, a study or a dataset as a .zip of DICOM files')
    .option('--series <uid>', 'a series')
    .option('--study <uid>', 'a study')
    .option('--dataset <name>', 'a dataset')
    .option('-o, --output <file>', "where to write the .zip (default: the server's name, in the current folder; - for stdout)")
    .option('--force', 'overwrite an existing file')
    .option('--json', 'print the file and its size as JSON')
    .action(act(async (o: Omit<ExportOptions, 'project'>) => exportCommand(api(), { ...o, project: project() })));

  program.command('results').description('result files of workflows (put-files), of every run or of one; --download fetches them')
    .option('--run <id>', 'only the files of this run')
    .option('--download <dir>', 'download them to <dir>/<run>/<path>')
    .option('--force', 'overwrite files that exist in <dir>')
    .option('--json', 'print JSON')
    .action(act(async (o: Omit<ResultsOptions, 'project'>) => resultsCommand(api(), { ...o, project: project() })));

  // ------------------------------------------------------------------ extensions (EDK)
  const task = program.command('task').description("Kaapana Task API without a server: validate processing-container.json or task.json, run a task.json on the local Docker engine")
    .addHelpText('after', `
A task.json names an image, a template of its /processing-container.json (or an inline
one) and host folders for its channels:
  {"name": "seg", "image": "my/seg:1", "taskTemplate": "segment",
   "inputs":  [{"name": "images", "volume_source": {"host_path": "./in"}}],
   "outputs": [{"name": "masks",  "volume_source": {"host_path": "./out"}}],
   "env": [{"name": "THRESHOLD", "value": "0.5"}]}
See docs/guides/operator-contract.md#the-kaapana-task-api.`);
  task.command('validate <file>').description('check a processing-container.json or a task.json (which one: by --schema, else by its content); names each path at fault')
    .option('--schema <kind>', '"pc" (processing-container.json) or "task" (task.json)')
    .action(act(async (file: string, o: { schema?: string }) => (await import('./commands/task-command.ts')).taskValidateCommand(file, o)));
  task.command('run <task.json>').description('run a task on the local Docker engine (DOCKER_HOST or the default socket), no server needed: inputs read-only and outputs read-write at their mounted paths, output streamed live; exits with the container\'s status (126: skipped)')
    .action(act(async (file: string) => (await import('./commands/task-command.ts')).taskRunCommand(file)));

  const ext = program.command('ext').description('extensions: the catalog, installs, and the development kit (init, build, dev, test, run-operator)');
  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  ext.command('list', { isDefault: true }).description('the catalog: every extension, its versions and state (the default of `tessera ext`)')
    .addOption(new Option('--kind <kind>', 'only this kind').choices(['workflow', 'application']))
    .addOption(new Option('--keyword <keyword>', 'only with this keyword').choices(['experimental', 'multi-installable', 'gpu-required']))
    .option('--installed', 'only installed ones (and failed installs)')
    .option('--json', 'print JSON')
    .action(act(async (o: { kind?: string; keyword?: string; installed?: boolean; json?: boolean }) => (await import('./commands/ext-command.ts')).extListCommand(api(), o)));
  ext.command('install <extension>').description('install name[@version] from the catalog, a folder (built first) or a package (.tgz); waits until its workflows are available')
    .option('-p, --param <key=value>', 'an install parameter (repeatable)', collect, [] as string[])
    .option('--no-wait', 'return once the install has started')
    .option('--json', 'print the catalog entry as JSON at the end')
    .action(act(async (target: string, o: { param: string[]; wait: boolean; json?: boolean }) => (await import('./commands/ext-command.ts')).extInstallCommand(api(), target, o)));
  ext.command('uninstall <name>').description('uninstall: its workflows go at once; runs already going finish on it')
    .action(act(async (name: string) => (await import('./commands/ext-command.ts')).extUninstallCommand(api(), name)));
  ext.command('delete <name@version>').description('delete an uploaded package version from the catalog, its files with it; asks first unless --yes')
    .option('-y, --yes', 'do not ask (needed without a terminal)')
    .option('--json', 'print JSON')
    .action(act(async (target: string, o: { yes?: boolean; json?: boolean }) => (await import('./commands/ext-command.ts')).extDeleteCommand(api(), target, o)));
  ext.command('build [folder]').description('build an extension folder into dist/<name>-<version>.tgz: manifest, compiled DAG specs, images (with checksums)')
    .option('-o, --out <file>', 'where to write the package')
    .option('--no-images', 'do not save the images into the package (installs only where this Docker engine has them)')
    .option('--json', 'print what was built as JSON')
    .action(act(async (folder: string | undefined, o: { out?: string; images: boolean; json?: boolean }) => (await import('./commands/ext-command.ts')).extBuildCommand(folder ?? '.', o)));
  ext.command('init <name>').description('make ./<name>/: a working extension from a template, with a README')
    .addOption(new Option('--kind <kind>', 'kind of extension').choices(['workflow', 'application']).default('workflow'))
    .option('--dir <folder>', 'make it in this folder instead of the current one')
    .action(act(async (name: string, o: { kind: string; dir?: string }) => extInitCommand(name, o)));
  ext.command('dev [folder]').description('install the folder into the running platform, then rebuild and reinstall it on every save')
    .action(act(async (folder: string | undefined) => (await import('./commands/ext-dev.ts')).extDevCommand(api(), folder ?? '.')));
  ext.command('test [folder]').description("run the extension's tessera-test.json cases in a throwaway platform; exits 1 when one fails")
    .option('--case <name>', 'only this case')
    .option('--keep', "keep the throwaway platform's home (workflow dirs, logs) for a look")
    .action(act(async (folder: string | undefined, o: { case?: string; keep?: boolean }) => (await import('./commands/ext-test.ts')).extTestCommand(folder ?? '.', o)));
  ext.command('run-operator <run> <task>').description("run one task of a past run again by hand, with the same environment, on a copy of that run's workflow dir (prints where the outputs went)")
    .addOption(new Option('--runner <runner>', 'where to run it (default: its container when a Docker engine answers, else its process)').choices(['docker', 'process']))
    .option('--image <image>', 'another image for the container (e.g. one you just built)')
    .option('-e, --env <key=value>', 'an extra environment variable (repeatable)', collect, [] as string[])
    .option('--in-place', "write into the run's own workflow dir, replacing the task's outputs there (default: a copy)")
    .action(act(async (run: string, task: string, o: { runner?: 'docker' | 'process'; image?: string; env: string[]; inPlace?: boolean }) => (await import('./commands/ext-run-operator.ts')).extRunOperatorCommand(api(), run, task, { ...o, project: project() })));

  // ------------------------------------------------------------------ applications
  const appCmd = program.command('app').description('application instances: launch, list, logs, stop (web apps served on the platform\'s port)');
  appCmd.command('launch <extension>').description('launch an instance of an installed application extension and wait until it serves')
    .option('-p, --param <key=value>', 'a parameter of the instance (repeatable)', collect, [] as string[])
    .option('--name <name>', 'instance name (multi-instance applications; default <extension>-<n>)')
    .option('--no-wait', 'return once it is starting')
    .option('--json', 'print the instance as JSON')
    .action(act(async (extension: string, o: { param: string[]; name?: string; wait: boolean; json?: boolean }) =>
      (await import('./commands/app-command.ts')).appLaunchCommand(api(), extension, { ...o, project: project() })));
  appCmd.command('list', { isDefault: true }).description('instances with their state and URL (the default of `tessera app`)')
    .option('--all-projects', 'instances of every project')
    .option('--json', 'print JSON')
    .action(act(async (o: { allProjects?: boolean; json?: boolean }) =>
      (await import('./commands/app-command.ts')).appListCommand(api(), { project: o.allProjects ? undefined : project(), json: o.json })));
  appCmd.command('logs <instance>').description("the last lines of an instance's output")
    .option('-n, --lines <n>', 'how many lines', atLeastOne, 200)
    .action(act(async (name: string, o: { lines: number }) => (await import('./commands/app-command.ts')).appLogsCommand(api(), name, { ...o, project: project() })));
  appCmd.command('complete <instance>').description('mark an instance a workflow task launched (launch-app) complete: the run goes on')
    .action(act(async (name: string) => {
      const a = await api().post<AppInstance>(`/api/applications/${encodeURIComponent(name)}/complete`, {}, { project: project() });
      console.log(`${a.name}: complete; run ${a.task?.run} goes on after task ${a.task?.task}`);
    }));
  appCmd.command('stop <instance>').description('stop an instance')
    .action(act(async (name: string) => (await import('./commands/app-command.ts')).appStopCommand(api(), name, { project: project() })));

  // ------------------------------------------------------------------ signing in, tokens, users, audit
  program.command('login [url]').description('sign in (asks name and password; reads them from stdin without a terminal) and save an API token for the server')
    .option('--username <name>', 'the user name (then stdin\'s first line is the password)')
    .action(act(async (target: string | undefined, o: { username?: string }) =>
      asking(async (answers) => (await auth()).loginCommand(new ApiClient(target ?? url()), o, answers))));
  program.command('logout [url]').description('revoke the API token `tessera login` saved for the server, and forget it')
    .action(act(async (target: string | undefined) => (await auth()).logoutCommand(new ApiClient(target ?? url()))));
  program.command('whoami').description('who the CLI acts as: user, admin or not, projects with roles, where its token came from').option('--json', 'print JSON')
    .action(act(async (o: { json?: boolean }) => (await auth()).whoamiCommand(api(), o)));
  program.command('password').description('change your password (asks the current one and a new one; reads them from stdin without a terminal)')
    .action(act(async () => asking(async (answers) => (await auth()).passwordCommand(api(), answers))));

  const token = program.command('token').description('your API tokens, for the CLI and scripts: create, list, revoke');
  token.command('create <name>').description('create an API token with your rights; prints it once, alone on stdout')
    .option('--expires-in-days <n>', 'days until it stops working (default: never)', atLeastOne)
    .option('--json', 'print the token and what it is as JSON')
    .action(act(async (name: string, o: { expiresInDays?: number; json?: boolean }) => (await access()).tokenCreateCommand(api(), name, o)));
  token.command('list', { isDefault: true }).description('your API tokens (never the secrets; the default of `tessera token`)')
    .option('--all', "everyone's tokens (an admin)")
    .option('--json', 'print JSON')
    .action(act(async (o: { all?: boolean; json?: boolean }) => (await access()).tokenListCommand(api(), o)));
  token.command('revoke <id>').description('revoke an API token (yours; an admin: anyone\'s)')
    .action(act(async (id: string) => (await access()).tokenRevokeCommand(api(), id)));

  const users = program.command('users').description('users of the platform (an admin): list, create, disable, enable, delete, reset-password');
  users.command('list', { isDefault: true }).description('users (the default of `tessera users`)').option('--json', 'print JSON')
    .action(act(async (o: { json?: boolean }) => (await access()).usersListCommand(api(), o)));
  users.command('create <name>').description('create a local user; prints the generated password once, alone on stdout (they change it at first sign-in)')
    .option('--admin', 'a platform admin')
    .option('--display-name <text>', 'their full name')
    .option('--password-stdin', 'read the password from stdin instead of generating one (asked without echo on a terminal)')
    .option('--json', 'print JSON')
    .action(act(async (name: string, o: { admin?: boolean; displayName?: string; passwordStdin?: boolean; json?: boolean }) =>
      asking(async (answers) => (await access()).usersCreateCommand(api(), name, o, answers))));
  users.command('disable <name>').description('disable a user: they cannot sign in, their sessions and tokens stop working')
    .action(act(async (name: string) => (await access()).usersUpdateCommand(api(), name, 'disable')));
  users.command('enable <name>').description('enable a disabled user again')
    .action(act(async (name: string) => (await access()).usersUpdateCommand(api(), name, 'enable')));
  users.command('delete <name>').description('delete a user with their sessions, tokens and memberships; asks first unless --yes')
    .option('-y, --yes', 'do not ask (needed without a terminal)')
    .action(act(async (name: string, o: { yes?: boolean }) => (await access()).usersDeleteCommand(api(), name, o)));
  users.command('reset-password <name>').description('give a user a new password they must change at next sign-in; prints a generated one once, alone on stdout')
    .option('--password-stdin', 'read the password from stdin instead of generating one (asked without echo on a terminal)')
    .action(act(async (name: string, o: { passwordStdin?: boolean }) =>
      asking(async (answers) => (await access()).usersResetPasswordCommand(api(), name, o, answers))));

  // `--project` is the global option: here it filters only when given on the command line (not its default, nor TESSERA_PROJECT).
  program.command('audit').description('the audit log, newest first (an admin): sign-ins, runs, uploads, deletes, installs, members, tokens; --project <name> keeps one project\'s')
    .option('--actor <user>', 'only what this user did')
    .option('--action <action>', 'only this action (sign-in, sign-in-failed, run-triggered, member-set, token-created, ...)')
    .option('--limit <n>', 'how many', atLeastOne, 100)
    .option('--offset <n>', 'skip this many', positiveInt, 0)
    .option('--json', 'print JSON')
    .action(act(async (o: { actor?: string; action?: string; limit: number; offset: number; json?: boolean }) =>
      (await access()).auditCommand(api(), { ...o, project: program.getOptionValueSource('project') === 'cli' ? project() : undefined })));

  program.hook('postAction', () => {
    process.exitCode = exitCode;
  });
  return program;
}

/** Entry point of bin/tessera.mjs. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    // A TesseraError of the EDK's own work (building a package): known by its code, since
    // importing @tessera/model here would slow every command down by its schema compiles.
    const tessera = err as { code?: unknown; details?: { where: string; message: string }[] };
    if (err instanceof CliError || (err instanceof Error && typeof tessera.code === 'string' && tessera.code.startsWith('TESSERA_'))) {
      console.error(`error: ${err.message}`);
      for (const d of (err as CliError).details ?? []) console.error(`  ${d.where}: ${d.message}`);
      process.exitCode = err instanceof CliError ? err.exitCode : 1;
      return;
    }
    throw err;
  }
}
