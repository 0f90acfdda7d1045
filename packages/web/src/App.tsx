import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState, type ComponentType, type ReactNode } from 'react';
import { ApiError, errorText, loadMe, needsSignIn, onSignInNeeded, post, type Me, type Project } from './api.ts';
import { chooseProject, isClientRoute, passwordProblem, roleLabel, signInPath } from './access.ts';
import { AppContext, type AppState, type Toast } from './context.ts';
import { Link } from './components/Link.tsx';
import { ErrorBox, FormDialog } from './components/Dialog.tsx';
import { PasswordFields } from './components/PasswordFields.tsx';
import { useLiveMode } from './live.ts';
import { navigate, useLocation } from './router.ts';
import { useAction } from './hooks.ts';
// The first page is in the main bundle (no second round trip before the gallery starts); the others load when opened.
import Datasets from './pages/Datasets.tsx';
// The sign-in page too: it is the first page of whoever is not signed in.
import SignIn from './pages/SignIn.tsx';

/**
 * A page whose code loads when it is first shown, or before (`preload`). Once loaded it
 * renders at once: `lazy` alone would suspend for a moment even then, and React shows
 * the content that follows a fallback up to 300 ms late (it throttles those reveals),
 * which the first page after signing in would wait for.
 */
function page<P extends object>(load: () => Promise<{ default: ComponentType<P> }>): { Page: ComponentType<P>; preload: () => Promise<unknown> } {
  let loaded: ComponentType<P> | undefined;
  let loading: Promise<{ default: ComponentType<P> }> | undefined;
  const preload = () =>
    (loading ??= load().then(
      (m) => ((loaded = m.default), m),
      (err: unknown) => {
        loading = undefined;
        throw err;
      },
    ));
  const Lazy = lazy(preload);
  const Page = (props: P) => {
    const Loaded = loaded;
    return Loaded ? <Loaded {...props} /> : <Lazy {...props} />;
  };
  return { Page, preload };
}

/** The pages that load when opened, by the first part of their path; the sign-in page starts loading the one it goes to next. */
const PAGES = {
  upload: page(() => import('./pages/Upload.tsx')),
  workflows: page(() => import('./pages/Workflows.tsx')),
  runs: page(() => import('./pages/Runs.tsx')),
  run: page(() => import('./pages/RunPage.tsx')),
  extensions: page(() => import('./pages/Extensions.tsx')),
  applications: page(() => import('./pages/Applications.tsx')),
  viewer: page(() => import('./pages/Viewer.tsx')),
  system: page(() => import('./pages/System.tsx')),
  members: page(() => import('./pages/Members.tsx')),
  tokens: page(() => import('./pages/Tokens.tsx')),
  admin: page(() => import('./pages/Admin.tsx')),
};
const Upload = PAGES.upload.Page;
const Workflows = PAGES.workflows.Page;
const Runs = PAGES.runs.Page;
const RunPage = PAGES.run.Page;
const Extensions = PAGES.extensions.Page;
const Applications = PAGES.applications.Page;
const Viewer = PAGES.viewer.Page;
const System = PAGES.system.Page;
const Members = PAGES.members.Page;
const Tokens = PAGES.tokens.Page;
const Admin = PAGES.admin.Page;

/** Starts loading the code of the page at `path` (before it is shown). */
function preloadPage(path: string): void {
  const parts = path.split(/[?#]/)[0]!.split('/').filter(Boolean);
  const [first = 'datasets', second, third] = parts;
  const key = first === 'runs' && second ? 'run' : first === 'projects' && third === 'members' ? 'members' : first;
  if (key in PAGES) PAGES[key as keyof typeof PAGES].preload().catch(() => undefined);
}

interface NavItem {
  href: string;
  label: string;
  /** What `route` answers as `nav` for the pages of this item. */
  key: string;
}

/** The server's default project (every server has it). */
const DEFAULT_PROJECT = 'admin';
const NEW_PROJECT = '\u0000new';
/** Pages that are about no project, shown to a user who is a member of none. */
const PROJECT_FREE = new Set(['/system', '/tokens', '/admin', '/extensions', '']);

function route(path: string): { page: ReactNode; nav: string; members?: string } {
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
    case 'tokens':
      return { page: <Tokens />, nav: '/tokens' };
    case 'admin':
      return { page: <Admin tab={second} />, nav: '/admin' };
    case 'projects':
      if (second && third === 'members' && parts.length === 3) return { page: <Members project={second} />, nav: '/members', members: second };
  }
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

/**
 * The app: who is signed in first (GET /api/auth/me; with access control off, everyone is
 * the one local admin), then the pages. Any answer that needs a sign-in (401, or a
 * password to change) sends the browser to `/sign-in?next=<where it was>`.
 */
export function App() {
  const { path, search } = useLocation();
  const [me, setMe] = useState<Me | undefined>(undefined);
  const [meError, setMeError] = useState<string | undefined>(undefined);
  const onSignInPage = path === '/sign-in';

  useEffect(
    () =>
      onSignInNeeded(() => {
        if (location.pathname === '/sign-in') return;
        setMe(undefined);
        navigate(signInPath(location.pathname + location.search), { replace: true });
      }),
    [],
  );

  useEffect(() => {
    if (onSignInPage || me) return;
    let current = true;
    setMeError(undefined);
    loadMe().then(
      (m) => {
        if (!current) return;
        if (m.auth === 'on' && m.user.must_change_password) navigate(signInPath(location.pathname + location.search), { replace: true });
        else setMe(m);
      },
      (err: unknown) => {
        // A 401 went to the sign-in page already; anything else (the server is down) is shown.
        if (current && !(err instanceof ApiError && needsSignIn(err, 'GET /api/auth/me'))) setMeError(errorText(err));
      },
    );
    return () => {
      current = false;
    };
  }, [onSignInPage, me]);

  useEffect(() => {
    if (onSignInPage) preloadPage(search.get('next') ?? '/');
  }, [onSignInPage]);

  if (onSignInPage) {
    return (
      <SignIn
        onSignedIn={(m, next) => {
          if (!isClientRoute(next)) return location.replace(next);
          setMe(m);
          navigate(next, { replace: true });
        }}
      />
    );
  }
  if (!me) {
    return (
      <div className="page">
        {meError ? (
          <>
            <h1>Tessera</h1>
            <ErrorBox error={meError} />
            <button onClick={() => location.reload()}>Try again</button>
          </>
        ) : (
          <div className="loading" role="status">
            Loading…
          </div>
        )}
      </div>
    );
  }
  return <Shell me={me} setMe={setMe} path={path} />;
}

function Shell({ me, setMe, path }: { me: Me; setMe: (m: Me) => void; path: string }) {
  const authOn = me.auth === 'on';
  const rememberKey = `tessera.project.${me.user.name}`;
  const [project, setProjectState] = useState(
    () => chooseProject(localStorage.getItem(rememberKey) ?? localStorage.getItem('tessera.project'), me.projects, DEFAULT_PROJECT) ?? DEFAULT_PROJECT,
  );
  const [selection, setSelection] = useState<Set<string>>(() => new Set());
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextToast = useRef(1);
  const liveMode = useLiveMode();
  const [creating, setCreating] = useState(false);
  const [changingPassword, setChangingPassword] = useState(false);

  const push = useCallback((kind: Toast['kind'], text: string) => {
    const id = nextToast.current++;
    setToasts((t) => [...t.slice(-4), { id, kind, text }]);
    if (kind === 'info') setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 5000);
  }, []);
  const report = useCallback((err: unknown) => push('error', errorText(err)), [push]);
  const notify = useCallback((text: string) => push('info', text), [push]);

  const setProject = useCallback(
    (name: string) => {
      localStorage.setItem(rememberKey, name);
      // The unkeyed one is what index.html prefetches the first page of series for.
      localStorage.setItem('tessera.project', name);
      setProjectState(name);
      setSelection(new Set());
      // On a project's members page, the other project's members.
      const m = /^\/projects\/[^/]+\/members$/.exec(location.pathname);
      if (m) navigate(`/projects/${encodeURIComponent(name)}/members`);
    },
    [rememberKey],
  );

  const refreshMe = useCallback(() => {
    loadMe().then(setMe, (err: unknown) => {
      if (!(err instanceof ApiError && needsSignIn(err, 'GET /api/auth/me'))) report(err);
    });
  }, [setMe, report]);

  // Once the server answered again, the chosen project may be gone, or the user no longer a member of it.
  useEffect(() => {
    if (me.projects.length > 0 && !me.projects.some((p) => p.project === project)) {
      const next = chooseProject(undefined, me.projects, DEFAULT_PROJECT);
      if (next) setProject(next);
    }
    // Only when `me` changes: a project just created is chosen before `me` lists it.
  }, [me]);

  const state: AppState = useMemo(
    () => ({ me, refreshMe, project, setProject, selection, setSelection, report, notify }),
    [me, refreshMe, project, setProject, selection, report, notify],
  );
  const { page, nav, members } = route(path);

  // The members page of a project names it: that project becomes the chosen one.
  useEffect(() => {
    if (members && members !== project && me.projects.some((p) => p.project === members)) {
      localStorage.setItem(rememberKey, members);
      localStorage.setItem('tessera.project', members);
      setProjectState(members);
      setSelection(new Set());
    }
  }, [members]);

  const navItems: NavItem[] = [
    { href: '/datasets', label: 'Datasets', key: '/datasets' },
    { href: '/upload', label: 'Upload', key: '/upload' },
    { href: '/workflows', label: 'Workflows', key: '/workflows' },
    { href: '/runs', label: 'Runs', key: '/runs' },
    { href: '/extensions', label: 'Extensions', key: '/extensions' },
    { href: '/applications', label: 'Applications', key: '/applications' },
    ...(authOn ? [{ href: `/projects/${encodeURIComponent(project)}/members`, label: 'Members', key: '/members' }] : []),
    { href: '/system', label: 'System', key: '/system' },
    ...(authOn && me.user.admin ? [{ href: '/admin', label: 'Admin', key: '/admin' }] : []),
  ];
  const noProjects = me.projects.length === 0 && !PROJECT_FREE.has(nav);
  const myRole = me.projects.find((p) => p.project === project)?.role;

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
            {navItems.map((n) => (
              <Link key={n.key} href={n.href} className={nav === n.key ? 'active' : undefined} aria-current={nav === n.key ? 'page' : undefined}>
                {n.label}
              </Link>
            ))}
          </nav>
          <div className="topbar-right">
            {!authOn && (
              <span className="badge auth-off" title="The server runs with TESSERA_AUTH=off: no sign-in, and whoever reaches it acts as admin. For one user on this machine only.">
                access control off
              </span>
            )}
            {liveMode !== 'connecting' && (
              <span className={`live live-${liveMode}`} title={liveMode === 'events' ? 'Live: server events' : 'Live: polling every 2 s'}>
                {liveMode === 'events' ? 'live' : 'polling'}
              </span>
            )}
            {me.projects.length > 0 || me.user.admin ? (
              <label className="project">
                <span>Project</span>
                <select
                  aria-label="Project"
                  value={project}
                  title={myRole ? `Your role in ${project}: ${roleLabel(myRole)}` : undefined}
                  onFocus={refreshMe}
                  onChange={(e) => {
                    if (e.target.value === NEW_PROJECT) setCreating(true);
                    else setProject(e.target.value);
                  }}
                >
                  {me.projects.map((p) => (
                    <option key={p.project} value={p.project}>
                      {authOn ? `${p.project} · ${roleLabel(p.role)}` : p.project}
                    </option>
                  ))}
                  {!me.projects.some((p) => p.project === project) && <option value={project}>{project}</option>}
                  {me.user.admin && <option value={NEW_PROJECT}>New project…</option>}
                </select>
              </label>
            ) : (
              <span className="project">no project yet</span>
            )}
            {authOn && <UserMenu me={me} onChangePassword={() => setChangingPassword(true)} />}
          </div>
        </header>
        <main id="main" key={project}>
          {noProjects ? (
            <div className="page">
              <h1>No project yet</h1>
              <p>You are not a member of any project yet: ask a principal investigator of a project, or an admin, to add you ({me.user.name}).</p>
            </div>
          ) : (
            <Suspense fallback={<div className="page loading">Loading…</div>}>{page}</Suspense>
          )}
        </main>
      </div>
      {creating && (
        <NewProject
          onClose={() => setCreating(false)}
          onCreated={(p) => {
            setCreating(false);
            notify(`project ${p.name} created`);
            refreshMe();
            setProject(p.name);
          }}
        />
      )}
      {changingPassword && (
        <ChangePasswordDialog
          onClose={() => setChangingPassword(false)}
          onDone={() => {
            setChangingPassword(false);
            notify('password changed; your other sessions were signed out');
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

/** The signed-in user's menu: API tokens, changing the password, signing out. */
function UserMenu({ me, onChangePassword }: { me: Me; onChangePassword: () => void }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === 'Escape' : !ref.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', close);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', close);
    };
  }, [open]);
  const signOut = () => {
    // A new page: nothing of this user's stays in memory (the event stream, the pages' data).
    void post('/api/auth/sign-out').finally(() => location.assign('/sign-in'));
  };
  return (
    <div className="user-menu" ref={ref}>
      <button className="user" aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen(!open)} title={me.user.display_name ?? undefined}>
        {me.user.name}
        {me.user.admin && <span className="badge">admin</span>}
      </button>
      {open && (
        <div className="menu" role="menu" aria-label="Account">
          <Link role="menuitem" href="/tokens" onClick={() => setOpen(false)}>
            API tokens
          </Link>
          {me.user.source === 'local' && (
            <button
              role="menuitem"
              onClick={() => {
                setOpen(false);
                onChangePassword();
              }}
            >
              Change password…
            </button>
          )}
          <button role="menuitem" onClick={signOut}>
            Sign out
          </button>
        </div>
      )}
    </div>
  );
}

function ChangePasswordDialog({ onClose, onDone }: { onClose: () => void; onDone: () => void }) {
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const action = useAction();
  const problem = passwordProblem(password, again);
  const submit = async () => {
    const r = await action.run(() => post('/api/auth/password', { current_password: current, new_password: password }));
    if (r !== undefined) onDone();
  };
  return (
    <FormDialog title="Change password" id="change-password" onClose={onClose} onSubmit={() => void submit()} submitLabel={<>Change</>} disabled={action.busy || !current || problem !== undefined} error={action.error}>
      <PasswordFields askCurrent current={current} setCurrent={setCurrent} password={password} setPassword={setPassword} again={again} setAgain={setAgain} problem={problem} />
    </FormDialog>
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
