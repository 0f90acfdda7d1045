import { useEffect, useState } from 'react';
import { get, post, type Answer, type Dataset, type Job, type Workflow } from '../api.ts';
import { useApp } from '../context.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { defaultsOf, SchemaForm, type JsonSchema } from '../components/SchemaForm.tsx';
import { taskFormConf, taskFormTasks } from '../components/task-form.ts';
import { useAction, useLoad } from '../hooks.ts';
import { navigate } from '../router.ts';

type DataChoice = 'dataset' | 'selection' | 'none';

/** Workflow execution: choose a workflow, fill its forms, pick the data, submit. */
export default function Workflows({ workflowId }: { workflowId?: string }) {
  const { project, selection } = useApp();
  const workflows = useLoad((signal) => get<Answer<'workflows', 'list'>>('/api/workflows', undefined, { signal }), [], ['workflows']);
  const datasets = useLoad((signal) => get<Answer<'datasets', 'list'>>('/api/datasets', { project, limit: 1000 }, { signal }), [project], ['datasets']);
  const list = workflows.data?.items ?? [];
  const wf = list.find((w) => w.id === workflowId) ?? (workflowId ? undefined : list[0]);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Workflows</h1>
          <p>Choose a workflow, fill in its form and the data it runs on. Install more from Extensions.</p>
        </div>
      </div>
      <ErrorBox error={workflows.error} />
      {workflows.data?.problems.map((p) => <ErrorBox key={p.dir} error={`extension ${p.dir} did not load: ${p.message}`} />)}
      {workflows.data && list.length === 0 && <div className="empty">No workflows installed. Install one on the Extensions page.</div>}
      {workflowId && workflows.data && !wf && <ErrorBox error={`there is no workflow "${workflowId}" (installed: ${list.map((w) => w.id).join(', ') || 'none'})`} />}
      {list.length > 0 && (
        <div className="two-col">
          <div className="pick-list" role="group" aria-label="Workflows">
            {list.map((w) => (
              <button key={w.id} className={w.id === wf?.id ? 'active' : undefined} aria-current={w.id === wf?.id} onClick={() => navigate(`/workflows/${encodeURIComponent(w.id)}`)}>
                <span>{w.title}</span>
                <small>
                  {w.id} · {w.extension.name} {w.extension.version}
                </small>
              </button>
            ))}
          </div>
          {wf && <WorkflowForm key={`${wf.id}-${project}`} wf={wf} datasets={datasets.data?.items ?? []} selection={selection} project={project} />}
        </div>
      )}
    </div>
  );
}

function WorkflowForm({ wf, datasets, selection, project }: { wf: Workflow; datasets: Dataset[]; selection: Set<string>; project: string }) {
  // The contract gives the forms as free-form objects: JSON Schemas, read as such.
  const workflowSchema: JsonSchema = wf.workflow_form;
  const dataSchema: JsonSchema = wf.data_form;
  const [form, setForm] = useState<Record<string, unknown>>(() => defaultsOf(workflowSchema));
  // The settings of its Task API tasks: one object schema per task id (conf.task_form).
  const taskSchema: JsonSchema | undefined = wf.task_form;
  const settingTasks = taskFormTasks(taskSchema);
  const [taskValues, setTaskValues] = useState<Record<string, unknown>>(() => defaultsOf(taskSchema));
  const dataProps = dataSchema.properties ?? {};
  const takesData = 'dataset_name' in dataProps || 'identifiers' in dataProps;
  // Until a choice is made: the selection when there is one, else a dataset when there is one, else no data.
  const [chosen, setChoice] = useState<DataChoice | undefined>(undefined);
  const choice: DataChoice = chosen ?? (selection.size > 0 && 'identifiers' in dataProps ? 'selection' : datasets.length > 0 && 'dataset_name' in dataProps ? 'dataset' : 'none');
  const [dataset, setDataset] = useState('');
  const [limit, setLimit] = useState('');
  const [dataRest, setDataRest] = useState<Record<string, unknown>>(() => defaultsOf({ ...dataSchema, properties: Object.fromEntries(Object.entries(dataProps).filter(([k]) => !['dataset_name', 'dataset_limit', 'identifiers'].includes(k))) }));
  const action = useAction();
  const { busy, error } = action;
  // data_form.dataset_name / identifiers are shown at the data picker.
  const errors = { ...action.fieldErrors };
  if (errors['data_form.dataset_name'] || errors['data_form.identifiers']) errors['data_form'] = errors['data_form.dataset_name'] ?? errors['data_form.identifiers']!;
  const [single, setSingle] = useState(false);

  useEffect(() => {
    if (!dataset && datasets[0]) setDataset(datasets[0].name);
  }, [datasets, dataset]);

  const submit = () => {
    const data: Record<string, unknown> = { ...dataRest };
    if (choice === 'dataset') {
      data.dataset_name = dataset;
      if (limit) data.dataset_limit = Number(limit);
    } else if (choice === 'selection') data.identifiers = [...selection];
    return action.run(async () => {
      const workflowForm = single && choice !== 'none' ? { ...form, single_execution: true } : form;
      const taskForm = taskFormConf(taskValues);
      const job = await post<Job>('/api/jobs', { workflow: wf.id, project, conf: { workflow_form: workflowForm, data_form: data, ...(taskForm ? { task_form: taskForm } : {}) } });
      // The first run's page; a job run once per series shows every series' progress there.
      navigate(job.runs[0] ? `/runs/${job.runs[0].id}` : `/runs?job=${job.id}`);
    });
  };

  const hasForm = Object.keys(workflowSchema.properties ?? {}).length > 0;
  return (
    <form
      className="panel"
      aria-label={`Run ${wf.title}`}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h2>{wf.title}</h2>
      {wf.description && <p className="muted">{wf.description}</p>}
      <p className="small muted">
        Tasks: {wf.tasks.map((t) => t.title).join(' → ')} ({wf.tasks.length})
      </p>
      {hasForm && (
        <fieldset>
          <legend>Parameters</legend>
          <SchemaForm schema={workflowSchema} value={form} onChange={setForm} errors={errors} path="workflow_form" />
        </fieldset>
      )}
      {settingTasks.length > 0 && taskSchema && (
        <fieldset aria-label="Task settings">
          <legend>Task settings</legend>
          <p className="small muted">Settings of the workflow's tasks, passed to each as environment variables.</p>
          <SchemaForm
            schema={{ ...taskSchema, properties: Object.fromEntries(settingTasks.map((id) => [id, { ...taskSchema.properties![id]!, title: `Task ${wf.tasks.find((t) => t.id === id)?.title ?? id}` }])) }}
            value={taskValues}
            onChange={setTaskValues}
            errors={errors}
            path="task_form"
          />
          {errors['task_form'] && <span className="field-error" role="alert">{errors['task_form']}</span>}
        </fieldset>
      )}
      {takesData && (
        <fieldset>
          <legend>Data</legend>
          {'dataset_name' in dataProps && (
            <div className="row" style={{ marginBottom: 8 }}>
              <label className="row">
                <input type="radio" name="data" checked={choice === 'dataset'} onChange={() => setChoice('dataset')} />A dataset
              </label>
              <select aria-label="Dataset" value={dataset} onChange={(e) => (setDataset(e.target.value), setChoice('dataset'))} disabled={datasets.length === 0}>
                {datasets.length === 0 && <option value="">no datasets in {project}</option>}
                {datasets.map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.name} ({d.series_count ?? 0} series)
                  </option>
                ))}
              </select>
              {'dataset_limit' in dataProps && (
                <input aria-label="At most this many series" type="number" min={1} placeholder="all series" value={limit} onChange={(e) => setLimit(e.target.value)} style={{ width: 130 }} />
              )}
            </div>
          )}
          {'identifiers' in dataProps && (
            <label className="row" style={{ marginBottom: 8 }}>
              <input type="radio" name="data" checked={choice === 'selection'} disabled={selection.size === 0} onChange={() => setChoice('selection')} />
              The series selected on the Datasets page ({selection.size})
            </label>
          )}
          <label className="row">
            <input type="radio" name="data" checked={choice === 'none'} onChange={() => setChoice('none')} />
            No data
          </label>
          {(errors['data_form'] || errors['data_form.dataset_limit']) && (
            <span className="field-error" role="alert">
              {errors['data_form'] ?? errors['data_form.dataset_limit']}
            </span>
          )}
          <SchemaForm schema={dataSchema} value={dataRest} onChange={setDataRest} errors={errors} path="data_form" skip={['dataset_name', 'dataset_limit', 'identifiers']} />
          {choice !== 'none' && (
            <label className="row">
              <input type="checkbox" checked={single} onChange={(e) => setSingle(e.target.checked)} />
              Run once per series (a run for each series, side by side)
            </label>
          )}
          {errors['workflow_form.single_execution'] && <span className="field-error">{errors['workflow_form.single_execution']}</span>}
        </fieldset>
      )}
      <ErrorBox error={error} />
      <div className="row">
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Starting…' : 'Run'}
        </button>
      </div>
    </form>
  );
}
