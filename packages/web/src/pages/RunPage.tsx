import { useEffect, useRef, useState } from 'react';
import { get, post, qs, toApiError, errorText, type Answer, type ResultFile, type RunDetail } from '../api.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox } from '../components/Dialog.tsx';
import { DagGraph } from '../components/DagGraph.tsx';
import { duration, formatBytes, formatTime, StateBadge } from '../components/StateBadge.tsx';
import { Link } from '../components/Link.tsx';
import { useAction, useLoad } from '../hooks.ts';
import { ProgressBar } from './Runs.tsx';

const ENDED = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);
const RUN_ENDED = new Set(['success', 'failed', 'canceled']);

export default function RunPage({ runId }: { runId: string }) {
  const { notify } = useApp();
  const run = useLoad((signal) => get<RunDetail>(`/api/runs/${encodeURIComponent(runId)}`, undefined, { signal }), [runId], ['runs']);
  const r = run.data;
  const ended = r ? RUN_ENDED.has(r.state) : false;
  const results = useLoad(
    (signal) => (r ? get<Answer<'results', 'ofRun'>>(`/api/results/${encodeURIComponent(runId)}`, { project: r.project }, { signal }) : Promise.resolve(undefined)),
    [runId, r?.project, r?.state],
  );
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [viewing, setViewing] = useState<ResultFile | undefined>(undefined);
  const action = useAction();

  // Follow the running task, else the failed one, else the first.
  const auto = r ? (r.tasks.find((t) => t.state === 'running') ?? r.tasks.find((t) => t.state === 'failed') ?? r.tasks[0]) : undefined;
  const taskId = selected ?? auto?.id;
  const task = r?.tasks.find((t) => t.id === taskId);

  if (!r) {
    return (
      <div className="page">
        <h1>Run {runId}</h1>
        <ErrorBox error={run.error} />
        {!run.error && <p className="loading">Loading…</p>}
      </div>
    );
  }
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <p className="small">
            <Link href="/runs">Runs</Link> /
          </p>
          <h1>
            {r.workflow} <span className="mono muted">{r.id}</span>
          </h1>
          <div className="row">
            <StateBadge state={r.state} />
            <ProgressBar counts={r.progress.counts} total={r.progress.total} />
            <span className="muted small" data-testid="run-progress">
              {r.progress.done}/{r.progress.total} tasks done · {duration(r.started_at, r.ended_at)}
              {r.attempt > 1 ? ` · attempt ${r.attempt}` : ''}
            </span>
          </div>
          {r.reason && <ErrorBox error={r.reason} />}
        </div>
        <span className="spacer" />
        <button
          disabled={ended || action.busy}
          onClick={() =>
            void action.run(async () => {
              await post(`/api/runs/${r.id}/cancel`);
              notify(`run ${r.id} canceled`);
              run.reload();
            })
          }
        >
          Cancel
        </button>
        <button
          className="primary"
          disabled={!(r.state === 'failed' || r.state === 'canceled') || action.busy}
          onClick={() =>
            void action.run(async () => {
              await post(`/api/runs/${r.id}/retry`);
              notify(`run ${r.id} retried`);
              run.reload();
            })
          }
        >
          Retry
        </button>
      </div>
      <ErrorBox error={action.error ?? run.error} />
      <DagGraph nodes={r.tasks.map((t) => ({ id: t.id, label: t.id, state: t.state, upstream: t.upstream }))} selected={taskId} onSelect={setSelected} />
      <JobSeries run={r} />
      <div className="run-grid">
        <section className="panel" aria-label="Task log">
          <div className="row">
            <h2 style={{ margin: 0 }}>
              {task ? (
                <>
                  Log of <span className="mono">{task.id}</span>
                </>
              ) : (
                'Log'
              )}
            </h2>
            {task && <StateBadge state={task.state} />}
            <span className="spacer" />
            {task?.log_url && (
              <a href={task.log_url} target="_blank" rel="noreferrer">
                raw
              </a>
            )}
          </div>
          {task && (
            <p className="small muted">
              {task.runner ?? 'no runner yet'} · try {task.try_number}
              {task.exit_code !== null ? ` · exit ${task.exit_code}` : ''} · {duration(task.started_at, task.ended_at)}
              {task.reason ? ` · ${task.reason}` : ''}
            </p>
          )}
          {task?.rerun_reason && (
            <p className="small" role="note" aria-label="Rerun">
              Rerun: {task.rerun_reason}
            </p>
          )}
          {task && <TaskLog key={`${task.id}:${r.attempt}:${ENDED.has(task.state) ? 'end' : task.log_url ? 'live' : 'wait'}`} url={task.log_url} follow={!ENDED.has(task.state)} />}
        </section>
        <section className="panel" aria-label="Results">
          <h2>Results</h2>
          <ErrorBox error={results.error} />
          {results.data && results.data.items.length === 0 && <p className="muted">{ended ? 'This run put no files in the result bucket.' : 'Files appear here when the run stores them.'}</p>}
          {results.data && results.data.items.length > 0 && (
            <table className="list" aria-label="Result files">
              <tbody>
                {results.data.items.map((f) => (
                  <tr key={f.path}>
                    <td className="mono">{f.path}</td>
                    <td>{formatBytes(f.size_bytes)}</td>
                    <td className="row">
                      <a href={f.url} download>
                        Download
                      </a>
                      {/\.(json|txt|csv|tsv|log|md|xml|yaml|yml)$/i.test(f.path) && f.size_bytes < 2_000_000 && (
                        <button className="small" onClick={() => setViewing(f)}>
                          View
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Details</h3>
          <dl className="kv small">
            <dt>Project</dt>
            <dd>{r.project}</dd>
            <dt>Job</dt>
            <dd>
              <Link href={`/runs?job=${r.job_id}`} className="mono">
                {r.job_id}
              </Link>
            </dd>
            <dt>Created</dt>
            <dd>{formatTime(r.created_at)}</dd>
            <dt>Ended</dt>
            <dd>{formatTime(r.ended_at)}</dd>
            <dt>Workflow dir</dt>
            <dd className="mono">{r.workflow_dir ?? 'removed'}</dd>
            <dt>Form</dt>
            <dd className="mono">{JSON.stringify(r.conf.workflow_form ?? {})}</dd>
            <dt>Data</dt>
            <dd className="mono">{JSON.stringify(r.conf.data_form ?? {})}</dd>
          </dl>
        </section>
      </div>
      {viewing && <ResultView file={viewing} onClose={() => setViewing(undefined)} />}
    </div>
  );
}

/**
 * Progress per series: a single_execution job runs once per series, so its runs are the
 * series' progress, live. A run over several series at once says so.
 */
function JobSeries({ run }: { run: RunDetail }) {
  const siblings = useLoad(
    (signal) => (run.series_uid ? get<Answer<'workflows', 'listRuns'>>('/api/runs', { project: run.project, job: run.job_id, sort: 'created_at', limit: 1000 }, { signal }) : Promise.resolve(undefined)),
    [run.job_id, run.project, run.series_uid],
    ['runs'],
  );
  if (!run.series_uid) {
    return run.series_count > 1 ? <p className="small muted">This run works on {run.series_count.toLocaleString()} series at once; its progress is per task.</p> : null;
  }
  const runs = siblings.data?.items ?? [];
  if (runs.length < 2) return <ErrorBox error={siblings.error} />;
  const done = runs.filter((x) => RUN_ENDED.has(x.state)).length;
  return (
    <section className="panel" aria-label="Series of this job">
      <h2>
        Series of this job <span className="muted small">{done}/{runs.length} done{siblings.data && siblings.data.total > runs.length ? ` (first ${runs.length} of ${siblings.data.total})` : ''}</span>
      </h2>
      <ErrorBox error={siblings.error} />
      <table className="list">
        <tbody>
          {runs.map((x) => (
            <tr key={x.id} aria-current={x.id === run.id ? 'page' : undefined} className={x.id === run.id ? 'current' : undefined}>
              <td className="mono small">{x.series_uid}</td>
              <td>
                <StateBadge state={x.state} />
              </td>
              <td>
                <ProgressBar counts={x.progress.counts} total={x.progress.total} />
              </td>
              <td className="small muted">
                {x.progress.done}/{x.progress.total} tasks
              </td>
              <td>{x.id === run.id ? <span className="small muted">this run</span> : <Link href={`/runs/${x.id}`}>{x.id}</Link>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** A text result file, shown in place (JSON indented). */
function ResultView({ file, onClose }: { file: ResultFile; onClose: () => void }) {
  const text = useLoad(async (signal) => {
    const res = await fetch(file.url, { signal });
    if (!res.ok) throw await toApiError(res, 'the result file');
    const body = await res.text();
    if (/\.json$/i.test(file.path)) {
      try {
        return JSON.stringify(JSON.parse(body), null, 2);
      } catch {
        return body;
      }
    }
    return body;
  }, [file.url]);
  return (
    <Dialog title={file.path} onClose={onClose} wide footer={<a className="button" href={file.url} download>Download</a>}>
      <ErrorBox error={text.error} />
      <pre className="log" tabIndex={0} data-testid="result-view">
        {text.data ?? 'Loading…'}
      </pre>
    </Dialog>
  );
}

/** A task's log, streamed with `follow=true` while the task runs. */
function TaskLog({ url, follow }: { url: string | null; follow: boolean }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const pre = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    if (!url) return;
    const ctl = new AbortController();
    (async () => {
      const res = await fetch(url + qs({ follow: follow ? 'true' : undefined }), { signal: ctl.signal });
      if (!res.ok) throw await toApiError(res, 'the log');
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        setText((t) => (t.length > 2_000_000 ? t.slice(-1_000_000) : t) + value);
      }
    })().catch((err: unknown) => {
      if ((err as Error).name !== 'AbortError') setError(errorText(err));
    });
    return () => ctl.abort();
  }, [url, follow]);
  useEffect(() => {
    if (stick.current && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  if (!url) return <p className="muted">The task has not started yet.</p>;
  return (
    <>
      <ErrorBox error={error} />
      <pre
        ref={pre}
        className="log"
        tabIndex={0}
        aria-label="Log output"
        data-testid="task-log"
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 20;
        }}
      >
        {text || (follow ? 'waiting for output…' : '(empty)')}
      </pre>
    </>
  );
}
