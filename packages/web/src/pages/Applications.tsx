import { useState } from 'react';
import { del, get, openHref, post, type Answer, type AppInstance, type Extension, type ExtensionCatalog } from '../api.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox, FormDialog } from '../components/Dialog.tsx';
import { initialParams, ParamForm } from '../components/ParamForm.tsx';
import { formatTime, StateBadge } from '../components/StateBadge.tsx';
import { Link } from '../components/Link.tsx';
import { useAction, useLoad } from '../hooks.ts';

export default function Applications() {
  const { project, notify } = useApp();
  const instances = useLoad((signal) => get<Answer<'applications', 'list'>>('/api/applications', { project }, { signal }), [project], ['applications', 'runs']);
  const apps = useLoad((signal) => get<ExtensionCatalog>('/api/extensions', { kind: 'application', state: 'installed' }, { signal }), [], ['extensions']);
  const [launching, setLaunching] = useState<Extension | undefined>(undefined);
  const [logsOf, setLogsOf] = useState<AppInstance | undefined>(undefined);
  const action = useAction();
  const list = instances.data?.items ?? [];
  const waiting = list.filter((i) => i.task && !i.task.completed_at && i.state !== 'stopped');

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Applications</h1>
          <p>Web apps of project “{project}”, served through the platform at their own path.</p>
        </div>
      </div>
      <ErrorBox error={instances.error ?? apps.error ?? action.error} />
      {waiting.length > 0 && (
        <section className="panel" style={{ marginBottom: 16 }} aria-label="Waiting for a person">
          <h2>Waiting for you</h2>
          <p className="muted">Workflows paused at these applications until someone marks the work done.</p>
          <table className="list">
            <tbody>
              {waiting.map((i) => (
                <tr key={i.id}>
                  <td>
                    <b>{i.name}</b> <span className="muted">({i.extension})</span>
                  </td>
                  <td>
                    run <Link href={`/runs/${i.task!.run}`}>{i.task!.run}</Link>, task <span className="mono">{i.task!.task}</span>
                  </td>
                  <td className="row">
                    <a className="button" href={openHref(i.url)} target="_blank" rel="noreferrer">
                      Open ↗
                    </a>
                    <button
                      className="primary"
                      onClick={() =>
                        void action.run(async () => {
                          await post(`/api/applications/${encodeURIComponent(i.name)}/complete`, undefined, { project });
                          notify(`${i.name} marked complete; the run goes on`);
                          instances.reload();
                        })
                      }
                    >
                      Mark complete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <section style={{ marginBottom: 16 }}>
        <h2>Launch</h2>
        {apps.data && apps.data.items.length === 0 && (
          <p className="muted">
            No application installed. <Link href="/extensions">Install one from Extensions</Link> (hello-world-app needs no Docker).
          </p>
        )}
        <div className="cards">
          {apps.data?.items.map((x) => (
            <div key={x.name} className="panel ext" data-app={x.name}>
              <h3 style={{ margin: 0 }}>{x.title ?? x.name}</h3>
              <p className="desc small">{x.description}</p>
              <div>
                <button className="primary" onClick={() => setLaunching(x)}>
                  Launch…
                </button>
              </div>
            </div>
          ))}
        </div>
      </section>
      <h2>Instances</h2>
      {instances.data && list.length === 0 ? (
        <div className="empty">Nothing launched in this project.</div>
      ) : (
        <table className="list" aria-label="Instances">
          <thead>
            <tr>
              <th>Name</th>
              <th>Application</th>
              <th>State</th>
              <th>Started</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((i) => (
              <tr key={i.id} data-instance={i.name}>
                <td>
                  <b>{i.name}</b>
                  <div className="small mono muted">{i.url}</div>
                </td>
                <td>
                  {i.extension} {i.version}
                  <div className="small muted">{i.runner}</div>
                </td>
                <td>
                  <StateBadge state={i.state} />
                  {i.reason && <div className="small muted" style={{ whiteSpace: 'pre-wrap', maxWidth: 480 }}>{i.reason}</div>}
                </td>
                <td>{formatTime(i.started_at)}</td>
                <td>
                  <div className="row">
                    {i.state === 'running' && (
                      <a className="button primary" href={openHref(i.url)} target="_blank" rel="noreferrer">
                        Open ↗
                      </a>
                    )}
                    <button onClick={() => setLogsOf(i)}>Logs</button>
                    {i.state !== 'stopped' && (
                      <button
                        className="danger"
                        onClick={() =>
                          void action.run(async () => {
                            await del(`/api/applications/${encodeURIComponent(i.name)}`, undefined, { project });
                            notify(`${i.name} stopped`);
                            instances.reload();
                          })
                        }
                      >
                        Stop
                      </button>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {launching && <LaunchDialog ext={launching} project={project} onClose={() => setLaunching(undefined)} onDone={() => instances.reload()} />}
      {logsOf && <LogsDialog inst={logsOf} project={project} onClose={() => setLogsOf(undefined)} />}
    </div>
  );
}

function LaunchDialog({ ext, project, onClose, onDone }: { ext: Extension; project: string; onClose: () => void; onDone: () => void }) {
  const { notify } = useApp();
  const [name, setName] = useState('');
  const [params, setParams] = useState(() => initialParams(ext.parameters, ext.installed?.params));
  const action = useAction();
  const { busy, error, fieldErrors: errors } = action;
  const submit = () =>
    action.run(async () => {
      const inst = await post<AppInstance>('/api/applications', { extension: ext.name, project, name: name.trim() || undefined, params });
      notify(`${inst.name} is starting`);
      onDone();
      onClose();
    });
  return (
    <FormDialog
      title={`Launch ${ext.title ?? ext.name}`}
      id="launch-form"
      onClose={onClose}
      onSubmit={() => void submit()}
      submitLabel={busy ? 'Launching…' : 'Launch'}
      disabled={busy}
      error={error}
    >
      <label className="field">
        <span className="label">Instance name</span>
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder={`default: ${ext.name} or ${ext.name}-<n>`} />
        <span className="field-help">Only for applications that run several instances; lower-case letters, digits and -.</span>
        {(errors['body.name'] ?? errors['name']) && <span className="field-error">{errors['body.name'] ?? errors['name']}</span>}
      </label>
      <ParamForm params={ext.parameters} value={params} onChange={setParams} errors={errors} />
    </FormDialog>
  );
}

function LogsDialog({ inst, project, onClose }: { inst: AppInstance; project: string; onClose: () => void }) {
  const logs = useLoad((signal) => get<string>(`/api/applications/${encodeURIComponent(inst.name)}/logs`, { project, lines: 500 }, { signal }), [inst.name, project], ['applications']);
  return (
    <Dialog title={`Logs of ${inst.name}`} onClose={onClose} wide>
      <ErrorBox error={logs.error} />
      <pre className="log" tabIndex={0}>
        {logs.data || '(empty)'}
      </pre>
    </Dialog>
  );
}
