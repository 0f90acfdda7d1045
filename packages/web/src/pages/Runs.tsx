import { useState } from 'react';
import { get, type Answer } from '../api.ts';
import { useApp } from '../context.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { duration, formatTime, StateBadge } from '../components/StateBadge.tsx';
import { STATE_COLORS } from '../components/DagGraph.tsx';
import { Link } from '../components/Link.tsx';
import { useLoad } from '../hooks.ts';
import { navigate, useLocation } from '../router.ts';

const RUN_STATES = ['queued', 'running', 'success', 'failed', 'canceled'];
const LIMIT = 50;

export function ProgressBar({ counts, total }: { counts: Record<string, number>; total: number }) {
  return (
    <div className="bar" title={Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')}>
      {Object.entries(counts).map(([s, n]) => (
        <span key={s} style={{ width: `${(n / Math.max(1, total)) * 100}%`, background: s === 'success' ? '#34a853' : s === 'running' ? '#2563eb' : (STATE_COLORS[s]?.text ?? '#9ca3af') }} />
      ))}
    </div>
  );
}

export default function Runs() {
  const { project } = useApp();
  const { search } = useLocation();
  const job = search.get('job') ?? '';
  const [state, setState] = useState('');
  const [workflow, setWorkflow] = useState('');
  const [offset, setOffset] = useState(0);
  const runs = useLoad((signal) => get<Answer<'workflows', 'listRuns'>>('/api/runs', { project, state, workflow, job, limit: LIMIT, offset }, { signal }), [project, state, workflow, job, offset], ['runs']);
  const workflows = useLoad((signal) => get<Answer<'workflows', 'list'>>('/api/workflows', undefined, { signal }), [], ['workflows']);
  const total = runs.data?.total ?? 0;

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Runs</h1>
          <p>Newest first; states change live.</p>
        </div>
        <span className="spacer" />
        <Link className="button primary" href="/workflows">
          Run a workflow…
        </Link>
      </div>
      <div className="filters">
        <select aria-label="State" value={state} onChange={(e) => (setState(e.target.value), setOffset(0))}>
          <option value="">Any state</option>
          <option value="queued,running">Active</option>
          {RUN_STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select aria-label="Workflow" value={workflow} onChange={(e) => (setWorkflow(e.target.value), setOffset(0))}>
          <option value="">Any workflow</option>
          {workflows.data?.items.map((w) => (
            <option key={w.id} value={w.id}>
              {w.title}
            </option>
          ))}
        </select>
        {job && (
          <span className="chip">
            job {job}
            <button className="icon" aria-label="Show all jobs" onClick={() => navigate('/runs')}>
              ×
            </button>
          </span>
        )}
      </div>
      <ErrorBox error={runs.error} />
      {runs.data && runs.data.items.length === 0 ? (
        <div className="empty">No runs{state || workflow || job ? ' match these filters' : ' yet'}.</div>
      ) : (
        <table className="list" aria-label="Runs">
          <thead>
            <tr>
              <th>Run</th>
              <th>Workflow</th>
              <th>State</th>
              <th>Progress</th>
              <th>Created</th>
              <th>Duration</th>
            </tr>
          </thead>
          <tbody>
            {runs.data?.items.map((r) => (
              <tr key={r.id} className="clickable" data-run={r.id} onClick={() => navigate(`/runs/${r.id}`)}>
                <td>
                  <Link href={`/runs/${r.id}`} className="mono" onClick={(e) => e.stopPropagation()}>
                    {r.id}
                  </Link>
                </td>
                <td>{r.workflow}</td>
                <td>
                  <StateBadge state={r.state} />
                  {r.reason && <div className="small muted">{r.reason}</div>}
                </td>
                <td>
                  <ProgressBar counts={r.progress.counts} total={r.progress.total} />
                  <span className="small muted">
                    {r.progress.done}/{r.progress.total} tasks
                  </span>
                </td>
                <td>{formatTime(r.created_at)}</td>
                <td>{duration(r.started_at, r.ended_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > LIMIT && (
        <div className="row" style={{ marginTop: 12 }}>
          <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - LIMIT))}>
            Newer
          </button>
          <span className="muted">
            {offset + 1}–{Math.min(total, offset + LIMIT)} of {total}
          </span>
          <button disabled={offset + LIMIT >= total} onClick={() => setOffset(offset + LIMIT)}>
            Older
          </button>
        </div>
      )}
    </div>
  );
}
