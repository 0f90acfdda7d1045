import { useRef, useState } from 'react';
import { del, get, post, toApiError, type DeletedExtensionVersion, type Extension, type ExtensionCatalog, type ExtensionPackage } from '../api.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox, FormDialog } from '../components/Dialog.tsx';
import { initialParams, ParamForm } from '../components/ParamForm.tsx';
import { StateBadge } from '../components/StateBadge.tsx';
import { Link } from '../components/Link.tsx';
import { useAction, useLoad } from '../hooks.ts';

export default function Extensions() {
  const { notify } = useApp();
  const [kind, setKind] = useState('');
  const [keyword, setKeyword] = useState('');
  const [installedOnly, setInstalledOnly] = useState(false);
  const [q, setQ] = useState('');
  const catalog = useLoad(
    (signal) => get<ExtensionCatalog>('/api/extensions', { kind, keyword, q, state: installedOnly ? 'installed,installing,error' : undefined }, { signal }),
    [kind, keyword, q, installedOnly],
    ['extensions'],
  );
  const [installing, setInstalling] = useState<Extension | undefined>(undefined);
  const [removing, setRemoving] = useState<Extension | undefined>(undefined);
  const [deleting, setDeleting] = useState<Extension | undefined>(undefined);
  const upload = useAction();
  const fileInput = useRef<HTMLInputElement>(null);
  const removeAction = useAction();

  const onUpload = async (file: File) => {
    const r = await upload.run(async () => {
      const res = await fetch('/api/extensions/packages', { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: file });
      if (!res.ok) throw await toApiError(res, `upload of ${file.name}`);
      return (await res.json()) as ExtensionPackage;
    });
    if (r) {
      notify(`${r.name} ${r.version} is in the catalog${r.replaced ? ' (replaced the package of that version)' : ''}; install it from its card`);
      catalog.reload();
    }
  };

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Extensions</h1>
          <p>The catalog: the built-in collection and the packages uploaded here. Installing one makes its workflows or application available.</p>
        </div>
        <span className="spacer" />
        <button onClick={() => fileInput.current?.click()} disabled={upload.busy}>
          {upload.busy ? 'Uploading…' : 'Upload a package…'}
        </button>
        <input
          ref={fileInput}
          type="file"
          hidden
          accept=".tgz,.tar.gz,application/gzip"
          aria-label="Extension package"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (f) void onUpload(f);
          }}
        />
      </div>
      <ErrorBox error={upload.error} />
      <div className="filters">
        <input type="search" aria-label="Search extensions" placeholder="Search name, title, description" value={q} onChange={(e) => setQ(e.target.value)} />
        <select aria-label="Kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="">Workflows and applications</option>
          <option value="workflow">Workflows</option>
          <option value="application">Applications</option>
        </select>
        <select aria-label="Keyword" value={keyword} onChange={(e) => setKeyword(e.target.value)}>
          <option value="">Any keyword</option>
          <option value="experimental">experimental</option>
          <option value="multi-installable">multi-installable</option>
          <option value="gpu-required">gpu-required</option>
        </select>
        <label className="row">
          <input type="checkbox" checked={installedOnly} onChange={(e) => setInstalledOnly(e.target.checked)} />
          Installed only
        </label>
      </div>
      <ErrorBox error={catalog.error ?? removeAction.error} />
      {catalog.data?.problems.map((p) => <ErrorBox key={p.dir} error={`${p.dir}: ${p.message}`} />)}
      {catalog.data && catalog.data.items.length === 0 && <div className="empty">No extension matches.</div>}
      <div className="cards">
        {catalog.data?.items.map((x) => (
          <article key={x.name} className="panel ext" aria-label={x.name} data-extension={x.name}>
            <div className="row">
              <h2 style={{ margin: 0 }}>{x.title ?? x.name}</h2>
              <span className="spacer" />
              <StateBadge state={x.state} />
            </div>
            <div className="small muted">
              {x.name} · {x.kind}
              {x.installed ? ` · ${x.installed.version} installed` : ''}
              {x.latest && x.latest !== x.installed?.version ? ` · ${x.latest} available` : ''}
              {x.linked ? ' · linked folder' : ''}
            </div>
            <p className="desc">{x.description}</p>
            {x.keywords.length > 0 && (
              <div className="chips">
                {x.keywords.map((k) => (
                  <span key={k} className="chip" style={{ paddingRight: 10 }}>
                    {k}
                  </span>
                ))}
              </div>
            )}
            {x.progress && (
              <div className="note-box small" role="status">
                {x.progress}
              </div>
            )}
            {x.error && <ErrorBox error={x.error} />}
            {x.workflows.length > 0 && (
              <div className="small">
                Workflows:{' '}
                {x.workflows.map((w, i) => (
                  <span key={w}>
                    {i > 0 && ', '}
                    <Link href={`/workflows/${encodeURIComponent(w)}`}>{w}</Link>
                  </span>
                ))}
              </div>
            )}
            <div className="row">
              <button className="primary" disabled={x.state === 'installing' || x.state === 'uninstalling' || !!x.linked || !x.latest} onClick={() => setInstalling(x)}>
                {x.state === 'installed' ? 'Change…' : x.state === 'installing' ? 'Installing…' : 'Install…'}
              </button>
              {(x.state === 'installed' || x.state === 'error') && !x.linked && (
                <button className="danger" onClick={() => setRemoving(x)}>
                  Uninstall
                </button>
              )}
              {x.versions.some((v) => v.source === 'package') && (
                <button className="danger" disabled={x.state === 'installing' || x.state === 'uninstalling'} onClick={() => setDeleting(x)}>
                  Delete a package…
                </button>
              )}
              {x.kind === 'application' && x.state === 'installed' && <Link href="/applications">Launch…</Link>}
            </div>
          </article>
        ))}
      </div>
      {deleting && <DeleteVersionDialog ext={deleting} onClose={() => setDeleting(undefined)} onDone={() => catalog.reload()} />}
      {installing && <InstallDialog ext={installing} onClose={() => setInstalling(undefined)} onDone={() => catalog.reload()} />}
      {removing && (
        <Dialog
          title={`Uninstall ${removing.name}?`}
          onClose={() => setRemoving(undefined)}
          footer={
            <>
              <button onClick={() => setRemoving(undefined)}>Cancel</button>
              <button
                className="danger solid"
                onClick={() => {
                  const name = removing.name;
                  setRemoving(undefined);
                  void removeAction.run(() => del(`/api/extensions/${encodeURIComponent(name)}`)).then((ok) => {
                    if (ok) notify(`${name} uninstalled`);
                    catalog.reload();
                  });
                }}
              >
                Uninstall
              </button>
            </>
          }
        >
          <p>Its workflows go at once; runs already going finish on their version. An uploaded package stays in the catalog.</p>
        </Dialog>
      )}
    </div>
  );
}

function InstallDialog({ ext, onClose, onDone }: { ext: Extension; onClose: () => void; onDone: () => void }) {
  const { notify } = useApp();
  const installable = ext.versions.filter((v) => !v.problem);
  const [version, setVersion] = useState(ext.installed?.version ?? ext.latest ?? installable[0]?.version ?? '');
  const [params, setParams] = useState(() => initialParams(ext.parameters, ext.installed?.params));
  const action = useAction();
  const { busy, error, fieldErrors: errors } = action;
  const submit = () =>
    action.run(async () => {
      const r = await post<Extension>(`/api/extensions/${encodeURIComponent(ext.name)}/install`, { version, params });
      notify(r.state === 'installed' ? `${ext.name} ${version} is installed` : `installing ${ext.name} ${version}…`);
      onDone();
      onClose();
    });
  return (
    <FormDialog
      title={`Install ${ext.title ?? ext.name}`}
      id="install-form"
      onClose={onClose}
      onSubmit={() => void submit()}
      submitLabel={busy ? 'Installing…' : 'Install'}
      disabled={busy || !version}
      error={error}
    >
      <label className="field">
        <span className="label">Version</span>
        <select value={version} onChange={(e) => setVersion(e.target.value)}>
          {ext.versions.map((v) => (
            <option key={`${v.version}-${v.source}`} value={v.version} disabled={!!v.problem}>
              {v.version} ({v.source}){v.problem ? `: ${v.problem}` : ''}
            </option>
          ))}
        </select>
      </label>
      <ParamForm params={ext.parameters} value={params} onChange={setParams} errors={errors} />
    </FormDialog>
  );
}

/** Deletes an uploaded package version (its files and catalog entry); the installed one is shown but cannot be chosen. */
function DeleteVersionDialog({ ext, onClose, onDone }: { ext: Extension; onClose: () => void; onDone: () => void }) {
  const { notify } = useApp();
  const packages = ext.versions.filter((v) => v.source === 'package');
  const isInstalled = (version: string) => ext.installed?.source === 'package' && ext.installed.version === version;
  const [version, setVersion] = useState(packages.find((v) => !isInstalled(v.version))?.version ?? '');
  const action = useAction();
  const submit = () =>
    action.run(async () => {
      const r = await del<DeletedExtensionVersion>(`/api/extensions/${encodeURIComponent(ext.name)}/versions/${encodeURIComponent(version)}`);
      notify(`${ext.name} ${version} deleted from the catalog${r.removed ? '' : '; its files go when the runs still using it end'}`);
      onDone();
      onClose();
    });
  return (
    <Dialog
      title={`Delete a package of ${ext.name}?`}
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="danger solid" disabled={action.busy || !version} onClick={() => void submit()}>
            {action.busy ? 'Deleting…' : 'Delete'}
          </button>
        </>
      }
    >
      <p>The uploaded package and its files leave the catalog and the disk; it cannot be undone (upload the package again to get it back). The installed version cannot be deleted: uninstall it first.</p>
      <label className="field">
        <span className="label">Version</span>
        <select value={version} onChange={(e) => setVersion(e.target.value)}>
          {packages.map((v) => (
            <option key={v.version} value={v.version} disabled={isInstalled(v.version)}>
              {v.version}
              {v.bytes !== null ? ` (${(v.bytes / 1024 / 1024).toFixed(1)} MB package)` : ''}
              {isInstalled(v.version) ? ': installed, uninstall it first' : ''}
            </option>
          ))}
        </select>
      </label>
      <ErrorBox error={action.error} />
    </Dialog>
  );
}
