import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { errorText, get, post, type Answer, type Project } from './api.ts';
import { AppContext, type AppState, type Toast } from './context.ts';
import { Link } from './components/Link.tsx';
import { FormDialog } from './components/Dialog.tsx';
import { useLiveMode } from './live.ts';
import { useLocation } from './router.ts';
import { useAction } from './hooks.ts';
// The first page is in the main bundle (no second round trip before the gallery starts); the others load when opened.
import Datasets from './pages/Datasets.tsx';

const Upload = lazy(() => import('./pages/Upload.tsx'));
const Workflows = lazy(() => import('./pages/Workflows.tsx'));
const Runs = lazy(() => import('./pages/Runs.tsx'));
const RunPage = lazy(() => import('./pages/RunPage.tsx'));
const Extensions = lazy(() => import('./pages/Extensions.tsx'));
const Applications = lazy(() => import('./pages/Applications.tsx'));
const Viewer = lazy(() => import('./pages/Viewer.tsx'));
const System = lazy(() => import('./pages/System.tsx'));

const NAV: { href: string; label: string }[] = [
  { href: '/datasets', label: 'Datasets' },
  { href: '/upload', label: 'Upload' },
  { href: '/workflows', label: 'Workflows' },
  { href: '/runs', label: 'Runs' },
  { href: '/extensions', label: 'Extensions' },
  { href: '/applications', label: 'Applications' },
  { href: '/system', label: 'System' },
];

/** The server's default project (GET /api/projects lists it first after creating it at start). */
const DEFAULT_PROJECT = 'admin';
const NEW_PROJECT = '\u0000new';

function route(path: string): { page: ReactNode; nav: string } {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const [first = 'datasets', second, third] = parts;
  switch (first) {
    case 'datasets':
      return { page: <Datasets />, nav: '/datasets' };
    case 'upload':
      return { page: <Upload />, nav: '/upload' };
    case 'workflows':
      return { page: <Workflows workflowId={second} />, nav: '/workflows' };
    case 'runs':
      return { page: second ? <RunPage runId={second} /> : <Runs />, nav: '/runs' };
    case 'extensions':
      return { page: <Extensions />, nav: '/extensions' };
    case 'applications':
      return { page: <Applications />, nav: '/applications' };
    case 'viewer':
      return { page: <Viewer study={second ?? ''} series={third ?? ''} />, nav: '/datasets' };
    case 'system':
      return { page: <System />, nav: '/system' };
    default:
      return {
        page: (
          <div className="page">
            <h1>Not found</h1>
            <p>
              There is no page at <code>{path}</code>. <Link href="/datasets">Go to Datasets</Link>.
            </p>
          </div>
        ),
        nav: '',
      };
  }
}

export function App() {
  const { path } = useLocation();
  const [project, setProjectState] = useState(() => localStorage.getItem('tessera.project') ?? DEFAULT_PROJECT);
  const [projects, setProjects] = useState<Project[]>([]);
  const [selection, setSelection] = useState<Set<string>>(() => new Set());
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextToast = useRef(1);
  const liveMode = useLiveMode();
  const [creating, setCreating] = useState(false);

  const push = useCallback((kind: Toast['kind'], text: string) => {
    const id = nextToast.current++;
    setToasts((t) => [...t.slice(-4), { id, kind, text }]);
    if (kind === 'info') setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 5000);
  }, []);
  const report = useCallback((err: unknown) => push('error', errorText(err)), [push]);
  const notify = useCallback((text: string) => push('info', text), [push]);

  const setProject = useCallback((name: string) => {
    localStorage.setItem('tessera.project', name);
    setProjectState(name);
    setSelection(new Set());
  }, []);

  useEffect(() => {
    get<Answer<'projects', 'list'>>('/api/projects').then(
      ({ items: list }) => {
        setProjects(list);
        if (list.length > 0 && !list.some((p) => p.name === project)) setProject(list.some((p) => p.name === DEFAULT_PROJECT) ? DEFAULT_PROJECT : list[0]!.name);
      },
      (err: unknown) => report(err),
    );
    // Only at start; the list is fetched again whenever the select gets focus.
  }, []);
  const refreshProjects = () =>
    get<Answer<'projects', 'list'>>('/api/projects').then((r) => setProjects(r.items), report);

  const state: AppState = useMemo(() => ({ project, setProject, selection, setSelection, report, notify }), [project, setProject, selection, report, notify]);
  const { page, nav } = route(path);

  return (
    <AppContext.Provider value={state}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <div className="shell">
        <header className="topbar">
          <Link href="/datasets" className="brand" aria-label="Tessera home">
            <span className="logo" aria-hidden="true" />
            Tessera
          </Link>
          <nav aria-label="Main">
            {NAV.map((n) => (
              <Link key={n.href} href={n.href} className={nav === n.href ? 'active' : undefined} aria-current={nav === n.href ? 'page' : undefined}>
                {n.label}
              </Link>
            ))}
          </nav>
          <div className="topbar-right">
            {liveMode !== 'connecting' && <span className={`live live-${liveMode}`} title={liveMode === 'events' ? 'Live: server events' : 'Live: polling every 2 s'}>
              {liveMode === 'events' ? 'live' : 'polling'}
            </span>}
            <label className="project">
              <span>Project</span>
              <select
                aria-label="Project"
                value={project}
                onFocus={() => void refreshProjects()}
                onChange={(e) => {
                  if (e.target.value === NEW_PROJECT) setCreating(true);
                  else setProject(e.target.value);
                }}
              >
                {(projects.some((p) => p.name === project) ? projects : [{ name: project }, ...projects]).map((p) => (
                  <option key={p.name} value={p.name}>
                    {p.name}
                  </option>
                ))}
                <option value={NEW_PROJECT}>New project…</option>
              </select>
            </label>
          </div>
        </header>
        <main id="main" key={project}>
          <Suspense fallback={<div className="page loading">Loading…</div>}>{page}</Suspense>
        </main>
      </div>
      {creating && (
        <NewProject
          onClose={() => setCreating(false)}
          onCreated={(p) => {
            setCreating(false);
            notify(`project ${p.name} created`);
            void refreshProjects();
            setProject(p.name);
          }}
        />
      )}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} role={t.kind === 'error' ? 'alert' : undefined}>
            <span>{t.text}</span>
            <button className="icon" aria-label="Dismiss" onClick={() => setToasts((x) => x.filter((y) => y.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </AppContext.Provider>
  );
}

function NewProject({ onClose, onCreated }: { onClose: () => void; onCreated: (p: Project) => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const action = useAction();
  const { busy, error } = action;
  const submit = () => action.run(async () => onCreated(await post<Project>('/api/projects', { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}) })));
  return (
    <FormDialog
      title="New project"
      id="new-project"
      onClose={onClose}
      onSubmit={() => void submit()}
      submitLabel={<>Create</>}
      disabled={busy || !name.trim()}
      error={error}
    >
      <label className="field">
        <span className="label">Name</span>
        <input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="lung-study" />
      </label>
      <label className="field">
        <span className="label">Description</span>
        <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
    </FormDialog>
  );
}
