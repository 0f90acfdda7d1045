import { useEffect, useState } from 'react';
import { ApiError, errorText, get, post, type AuthProviders, type Me } from '../api.ts';
import { linkCode, passwordProblem, safeNext } from '../access.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { PasswordFields } from '../components/PasswordFields.tsx';
import { useLocation } from '../router.ts';

type Stage =
  | { kind: 'checking'; what: string }
  | { kind: 'form' }
  /** The password was set by someone else: the user chooses their own. `current` is known after a password sign-in; a link's session needs none. */
  | { kind: 'change'; me: Me; current: string | undefined; viaLink: boolean };

/**
 * The sign-in page (`/sign-in?next=<path>`): a name and password, the OpenID Connect
 * issuer when there is one, the console's single-use link (`#code=...`), and the forced
 * choice of one's own password. Calls `onSignedIn` with who signed in; the app then goes
 * to `next`.
 */
export default function SignIn({ onSignedIn }: { onSignedIn: (me: Me, next: string) => void }) {
  const { search } = useLocation();
  const next = safeNext(search.get('next'));
  const [stage, setStage] = useState<Stage>({ kind: 'checking', what: 'Checking whether you are signed in…' });
  const [providers, setProviders] = useState<AuthProviders | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');

  const afterSignIn = (me: Me, current: string | undefined, viaLink: boolean) => {
    if (me.auth === 'on' && me.user.must_change_password) setStage({ kind: 'change', me, current, viaLink });
    else onSignedIn(me, next);
  };

  useEffect(() => {
    get<AuthProviders>('/api/auth/providers').then(setProviders, (err: unknown) => setError(errorText(err)));
    const code = linkCode(location.hash);
    if (code) {
      // The code leaves the address bar (and the history) before it is used: it works once.
      history.replaceState(history.state, '', location.pathname + location.search);
      setStage({ kind: 'checking', what: "Signing in with the console's link…" });
      post<Me>('/api/auth/link', { code }).then(
        (me) => afterSignIn(me, undefined, true),
        (err: unknown) => {
          setError(errorText(err));
          setStage({ kind: 'form' });
        },
      );
      return;
    }
    // Already signed in (a bookmark of this page), or signed in but not yet past the password change.
    get<Me>('/api/auth/me').then(
      (me) => afterSignIn(me, undefined, false),
      (err: unknown) => {
        if (!(err instanceof ApiError && err.status === 401)) setError(errorText(err));
        setStage({ kind: 'form' });
      },
    );
    // Once: the page's own state moves on from here.
  }, []);

  const signIn = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const me = await post<Me>('/api/auth/sign-in', { username: username.trim(), password });
      afterSignIn(me, password, false);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="sign-in">
      <div className="panel sign-in-panel">
        <div className="brand-large">
          <span className="logo" aria-hidden="true" />
          Tessera
        </div>
        {stage.kind === 'checking' && (
          <p className="muted" role="status">
            {stage.what}
          </p>
        )}
        {stage.kind === 'form' && (
          <>
            <h1>Sign in</h1>
            {providers?.local !== false && (
              <form
                aria-label="Sign in"
                onSubmit={(e) => {
                  e.preventDefault();
                  void signIn();
                }}
              >
                <label className="field">
                  <span className="label">User name</span>
                  <input autoComplete="username" autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
                </label>
                <label className="field">
                  <span className="label">Password</span>
                  <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
                </label>
                <button className="primary wide" type="submit" disabled={busy || !username.trim() || !password}>
                  {busy ? 'Signing in…' : 'Sign in'}
                </button>
              </form>
            )}
            {providers?.oidc && (
              <>
                {providers.local && <div className="or">or</div>}
                <a className="button wide" href={`${providers.oidc.start_url}${providers.oidc.start_url.includes('?') ? '&' : '?'}next=${encodeURIComponent(next)}`}>
                  Sign in with {providers.oidc.name}
                </a>
              </>
            )}
          </>
        )}
        {stage.kind === 'change' && <ChangePassword stage={stage} onDone={(me) => onSignedIn(me, next)} />}
        <ErrorBox error={error} />
      </div>
    </div>
  );
}

/** The forced choice of one's own password, after a sign-in with a password someone else set. */
function ChangePassword({ stage, onDone }: { stage: Extract<Stage, { kind: 'change' }>; onDone: (me: Me) => void }) {
  const askCurrent = !stage.viaLink && stage.current === undefined;
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const problem = passwordProblem(password, again);

  const submit = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const currentPassword = askCurrent ? current : stage.current;
      await post('/api/auth/password', { ...(currentPassword !== undefined ? { current_password: currentPassword } : {}), new_password: password });
      onDone(await get<Me>('/api/auth/me'));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  const name = stage.me.user.display_name ? `${stage.me.user.display_name} (${stage.me.user.name})` : stage.me.user.name;
  return (
    <form
      aria-label="Choose your password"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h1>Choose your password</h1>
      <p className="muted">
        Signed in as <b>{name}</b>. {stage.viaLink ? "You used the console's link: " : 'Your password was set by someone else: '}
        choose your own before you go on.
      </p>
      <PasswordFields askCurrent={askCurrent} current={current} setCurrent={setCurrent} password={password} setPassword={setPassword} again={again} setAgain={setAgain} problem={problem} />
      <button className="primary wide" type="submit" disabled={busy || problem !== undefined || (askCurrent && !current)}>
        {busy ? 'Saving…' : 'Save and continue'}
      </button>
      <ErrorBox error={error} />
      <p className="small">
        <a
          href="/sign-in"
          onClick={(e) => {
            e.preventDefault();
            void post('/api/auth/sign-out').finally(() => location.assign('/sign-in'));
          }}
        >
          Sign out
        </a>
      </p>
    </form>
  );
}
