import { ApiError, get, type Health, type SystemReport } from '../api.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { formatBytes, formatTime } from '../components/StateBadge.tsx';
import { useLoad } from '../hooks.ts';

/** GET /api/system; a server without it (older) answers GET /api/health, shown as it is. */
async function load(signal: AbortSignal): Promise<{ system?: SystemReport; health?: Health }> {
  try {
    return { system: await get<SystemReport>('/api/system', undefined, { signal }) };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { health: await get<Health>('/api/health', undefined, { signal }) };
    throw err;
  }
}

function Found({ ok, children }: { ok: boolean; children: React.ReactNode }) {
  return (
    <span className={`badge ${ok ? 'state-success' : 'state-canceled'}`} style={{ textTransform: 'none' }}>
      {children}
    </span>
  );
}

export default function System() {
  const info = useLoad(load, [], ['system', 'extensions']);
  const s = info.data?.system;
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>System</h1>
          <p>What this server found, runs with, and how much disk it uses.</p>
        </div>
      </div>
      <ErrorBox error={info.error} />
      {info.data?.health && <pre className="panel mono">{JSON.stringify(info.data.health, null, 2)}</pre>}
      {s && (
        <div className="cards">
          <section className="panel">
            <h2>Versions</h2>
            <dl className="kv">
              {Object.entries(s.version).map(([k, v]) => (
                <div key={k} style={{ display: 'contents' }}>
                  <dt>{k.replace('_', ' ')}</dt>
                  <dd>{v}</dd>
                </div>
              ))}
              <dt>started</dt>
              <dd>
                {formatTime(s.started_at)} (up {Math.round(s.uptime_s / 60)} min)
              </dd>
              <dt>home</dt>
              <dd className="mono">{s.home}</dd>
            </dl>
          </section>
          <section className="panel">
            <h2>Runners</h2>
            <ul>
              {s.runners.map((r) => (
                <li key={r.name}>
                  <b>{r.name}</b>: {r.detail}
                </li>
              ))}
            </ul>
            {s.runner_notes.map((n) => (
              <div key={n} className="note-box small">
                {n}
              </div>
            ))}
          </section>
          <section className="panel">
            <h2>Components</h2>
            <dl className="kv">
              <dt>Docker</dt>
              <dd>
                <Found ok={s.components.docker.available}>{s.components.docker.available ? `Docker ${s.components.docker.version}` : 'not found'}</Found>
                <div className="small muted">{s.components.docker.socket ?? s.components.docker.reason}</div>
              </dd>
              <dt>Processes</dt>
              <dd>
                <Found ok={s.components.process.available}>{s.components.process.available ? 'yes' : 'off'}</Found>
              </dd>
              <dt>Kubernetes</dt>
              <dd>
                <Found ok={s.components.kubernetes.configured}>{s.components.kubernetes.configured ? 'configured' : 'no'}</Found>
                <div className="small muted">{s.components.kubernetes.reason}</div>
              </dd>
              <dt>DICOM (C-STORE)</dt>
              <dd>{s.components.dimse.enabled ? `${s.components.dimse.ae_title} on ${s.components.dimse.host}:${s.components.dimse.port ?? '?'}` : 'off'}</dd>
              <dt>DICOMweb</dt>
              <dd className="mono small">{s.components.dicomweb.url}</dd>
            </dl>
            <h3>Tools</h3>
            <table className="list small">
              <tbody>
                {s.components.tools.map((t) => (
                  <tr key={t.name}>
                    <td>
                      <Found ok={t.found}>{t.name}</Found>
                    </td>
                    <td className="muted">{t.used_for}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
          <section className="panel">
            <h2>Disk</h2>
            <Usage used={s.disk.filesystem.total_bytes - s.disk.filesystem.available_bytes} total={s.disk.filesystem.total_bytes} />
            <dl className="kv" style={{ marginTop: 8 }}>
              <dt>Free</dt>
              <dd>
                {formatBytes(s.disk.filesystem.available_bytes)} of {formatBytes(s.disk.filesystem.total_bytes)}
              </dd>
              <dt>DICOM store</dt>
              <dd>
                {formatBytes(s.disk.dicom.bytes)} · {s.disk.dicom.series.toLocaleString()} series · {s.disk.dicom.instances.toLocaleString()} instances
              </dd>
              <dt>Database</dt>
              <dd>{formatBytes(s.disk.database.bytes)}</dd>
              {s.disk.folders &&
                Object.entries(s.disk.folders).map(([k, f]) => (
                  <div key={k} style={{ display: 'contents' }}>
                    <dt>{k}</dt>
                    <dd>
                      {formatBytes(f.bytes)} · {f.files.toLocaleString()} files
                    </dd>
                  </div>
                ))}
            </dl>
            <p className="small muted">{s.disk.computed_at ? `Folder sizes from ${formatTime(s.disk.computed_at)}.` : s.disk.computing ? 'Folder sizes are being computed…' : ''}</p>
          </section>
        </div>
      )}
    </div>
  );
}

function Usage({ used, total }: { used: number; total: number }) {
  const pct = Math.round((used / Math.max(1, total)) * 100);
  return (
    <div className={`progress${pct > 90 ? ' bad' : ''}`} style={{ height: 10 }} role="progressbar" aria-label="Disk used" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
      <div style={{ width: `${pct}%` }} />
    </div>
  );
}
