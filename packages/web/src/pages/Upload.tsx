import { useRef, useState, type DragEvent } from 'react';
import { qs, toApiError, type ImportError, type ImportFile, type ImportResult } from '../api.ts';
import { useApp } from '../context.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { formatBytes, StateBadge } from '../components/StateBadge.tsx';
import { Link } from '../components/Link.tsx';

interface Item {
  id: number;
  file: File;
  path: string;
  loaded: number;
  state: 'waiting' | 'uploading' | 'done' | 'failed';
  /** What the server said about each DICOM file in it (one for a .dcm, many for a .zip). */
  results: ImportFile[];
  error?: string;
}

const PARALLEL = 4;

/** Files of a dropped folder, walked with the (webkit) FileSystem entries API. */
async function filesOfEntry(entry: FileSystemEntry, prefix = ''): Promise<{ file: File; path: string }[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    return [{ file, path: prefix + file.name }];
  }
  if (!entry.isDirectory) return [];
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: { file: File; path: string }[] = [];
  // readEntries answers in batches (100 in Chromium) until an empty one.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
    if (batch.length === 0) break;
    for (const e of batch) out.push(...(await filesOfEntry(e, `${prefix}${entry.name}/`)));
  }
  return out;
}

function contentType(f: File): string {
  return /\.zip$/i.test(f.name) || f.type === 'application/zip' || f.type === 'application/x-zip-compressed' ? 'application/zip' : 'application/dicom';
}

/** What the page reads of an import's answer. */
type Outcome = Pick<ImportResult, 'dataset' | 'stored' | 'duplicates' | 'files'>;

/** Sends one file to POST /api/dicom/import with upload progress (XMLHttpRequest has it, fetch does not). */
function send(url: string, item: Item, onProgress: (loaded: number) => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('content-type', contentType(item.file));
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onerror = () => reject(new Error(`${item.path}: the upload was cut off (network error)`));
    xhr.onload = async () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText) as ImportResult);
        } catch {
          reject(new Error(`${item.path}: the server's answer is not JSON`));
        }
        return;
      }
      // Nothing stored: the error answer (ImportError) carries the per-file results too.
      const err = await toApiError(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText }), 'upload');
      const files = (err.body as ImportError | undefined)?.files;
      if (files) resolve({ dataset: '', stored: 0, duplicates: 0, files });
      else reject(err);
    };
    xhr.send(item.file);
  });
}

export default function Upload() {
  const { project } = useApp();
  const [items, setItems] = useState<Item[]>([]);
  const [dataset, setDataset] = useState('');
  const [over, setOver] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [datasetUsed, setDatasetUsed] = useState<string | undefined>(undefined);
  const nextId = useRef(1);
  const fileInput = useRef<HTMLInputElement>(null);
  const dirInput = useRef<HTMLInputElement>(null);

  const update = (id: number, patch: Partial<Item>) => setItems((list) => list.map((x) => (x.id === id ? { ...x, ...patch } : x)));

  const start = async (files: { file: File; path: string }[]) => {
    setError(undefined);
    const fresh: Item[] = files
      .filter((f) => !/(^|\/)(\.DS_Store|Thumbs\.db|desktop\.ini)$/.test(f.path))
      .map((f) => ({ id: nextId.current++, file: f.file, path: f.path, loaded: 0, state: 'waiting', results: [] }));
    if (fresh.length === 0) return;
    setItems((list) => [...list, ...fresh]);
    const url = `/api/dicom/import${qs({ project, dataset: dataset.trim() })}`;
    const queue = [...fresh];
    const worker = async () => {
      for (let it = queue.shift(); it; it = queue.shift()) {
        const item = it;
        update(item.id, { state: 'uploading' });
        try {
          const r = await send(url, item, (loaded) => update(item.id, { loaded }));
          if (r.dataset) setDatasetUsed(r.dataset);
          update(item.id, { state: r.stored + r.duplicates > 0 ? 'done' : 'failed', loaded: item.file.size, results: r.files });
        } catch (err) {
          update(item.id, { state: 'failed', error: err instanceof Error ? err.message : String(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, fresh.length) }, worker));
  };

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter((x): x is FileSystemEntry => !!x);
    try {
      const files = entries.length > 0 ? (await Promise.all(entries.map((en) => filesOfEntry(en)))).flat() : [...e.dataTransfer.files].map((f) => ({ file: f, path: f.name }));
      await start(files);
    } catch (err) {
      setError(`could not read the dropped files: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const all = items.flatMap((i) => i.results);
  const stored = all.filter((r) => r.status === 'stored' || r.status === 'replaced').length;
  const duplicates = all.filter((r) => r.status === 'duplicate').length;
  // A single file is sent as application/dicom (the server calls it upload.dcm): name it by its path here; a .zip's entries by theirs.
  const rejected = items.flatMap((i) =>
    i.results.filter((r) => r.status === 'rejected').map((r) => ({ ...r, file: contentType(i.file) === 'application/zip' ? `${i.path} › ${r.file}` : i.path })),
  );
  const failedUploads = items.filter((i) => i.error);
  const active = items.some((i) => i.state === 'waiting' || i.state === 'uploading');
  const totalBytes = items.reduce((n, i) => n + i.file.size, 0);
  const sentBytes = items.reduce((n, i) => n + i.loaded, 0);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Upload</h1>
          <p>DICOM files, folders of them, or .zip archives, into project “{project}”.</p>
        </div>
      </div>
      <label className="field" style={{ maxWidth: 420 }}>
        <span className="label">Dataset</span>
        <input value={dataset} onChange={(e) => setDataset(e.target.value)} placeholder="import-YYYY-MM-DD (created if new)" />
      </label>
      <div
        className={`dropzone${over ? ' over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => void onDrop(e)}
        data-testid="dropzone"
      >
        <p>
          <b>Drop files, folders or .zip archives here</b>
        </p>
        <p className="muted">or</p>
        <div className="row" style={{ justifyContent: 'center' }}>
          <button className="primary" onClick={() => fileInput.current?.click()}>
            Choose files…
          </button>
          <button onClick={() => dirInput.current?.click()}>Choose a folder…</button>
        </div>
        <input
          ref={fileInput}
          type="file"
          multiple
          hidden
          aria-label="Files to upload"
          onChange={(e) => {
            void start([...(e.target.files ?? [])].map((f) => ({ file: f, path: f.name })));
            e.target.value = '';
          }}
        />
        <input
          ref={dirInput}
          type="file"
          hidden
          multiple
          {...({ webkitdirectory: '' } as Record<string, string>)}
          onChange={(e) => {
            void start([...(e.target.files ?? [])].map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
            e.target.value = '';
          }}
        />
      </div>
      <ErrorBox error={error} />

      {items.length > 0 && (
        <>
          <div className="summary" aria-live="polite" data-testid="upload-summary">
            <div className="stat">
              <b>{stored}</b> stored
            </div>
            <div className="stat">
              <b>{duplicates}</b> duplicates
            </div>
            <div className="stat">
              <b>{rejected.length + failedUploads.length}</b> rejected
            </div>
            <div className="stat">
              <b>{active ? `${Math.round((sentBytes / Math.max(1, totalBytes)) * 100)}%` : 'done'}</b>
              {items.length} file(s), {formatBytes(totalBytes)}
            </div>
          </div>
          {!active && stored + duplicates > 0 && (
            <p>
              <Link href={`/datasets?dataset=${encodeURIComponent(datasetUsed ?? '')}`}>See the series of dataset {datasetUsed}</Link>
            </p>
          )}
          {(rejected.length > 0 || failedUploads.length > 0) && (
            <>
              <h2>Rejected</h2>
              <table className="list" data-testid="rejected">
                <thead>
                  <tr>
                    <th>File</th>
                    <th>Why</th>
                  </tr>
                </thead>
                <tbody>
                  {failedUploads.map((i) => (
                    <tr key={`u${i.id}`}>
                      <td className="mono">{i.path}</td>
                      <td>{i.error}</td>
                    </tr>
                  ))}
                  {rejected.map((r, n) => (
                    <tr key={`r${n}`}>
                      <td className="mono">{r.file}</td>
                      <td>
                        {r.error?.message} <span className="muted small">({r.error?.code})</span>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          <h2 style={{ marginTop: 16 }}>Files</h2>
          <table className="list">
            <thead>
              <tr>
                <th>File</th>
                <th>Size</th>
                <th style={{ width: 200 }}>Progress</th>
                <th>Result</th>
              </tr>
            </thead>
            <tbody>
              {items.slice(-500).map((i) => (
                <tr key={i.id} data-testid="upload-row">
                  <td className="mono">{i.path}</td>
                  <td>{formatBytes(i.file.size)}</td>
                  <td>
                    <div className={`progress${i.state === 'done' ? ' ok' : i.state === 'failed' ? ' bad' : ''}`} role="progressbar" aria-valuenow={Math.round((i.loaded / Math.max(1, i.file.size)) * 100)} aria-valuemin={0} aria-valuemax={100}>
                      <div style={{ width: `${(i.loaded / Math.max(1, i.file.size)) * 100}%` }} />
                    </div>
                  </td>
                  <td>
                    {i.state === 'waiting' || i.state === 'uploading' ? (
                      <span className="muted">{i.state}…</span>
                    ) : i.results.length === 1 ? (
                      <StateBadge state={i.results[0]!.status} />
                    ) : i.results.length > 1 ? (
                      <span>
                        {i.results.filter((r) => r.status === 'stored' || r.status === 'replaced').length} stored, {i.results.filter((r) => r.status === 'duplicate').length} duplicates, {i.results.filter((r) => r.status === 'rejected').length} rejected
                      </span>
                    ) : (
                      <StateBadge state="failed" />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {items.length > 500 && <p className="muted">The last 500 files are listed; the summary counts all {items.length}.</p>}
          <div className="row" style={{ marginTop: 12 }}>
            <button disabled={active} onClick={() => setItems([])}>
              Clear the list
            </button>
          </div>
        </>
      )}
    </div>
  );
}
