import { useState } from 'react';
import { del, get, patch, post, type Answer, type AuditEntry, type User } from '../api.ts';
import { generatePassword, PASSWORD_MIN } from '../access.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox, FormDialog } from '../components/Dialog.tsx';
import { Link } from '../components/Link.tsx';
import { Secret } from '../components/Secret.tsx';
import { formatTime } from '../components/StateBadge.tsx';
import { useAction, useLoad } from '../hooks.ts';

/** The platform admin's page (`/admin`, `/admin/audit`): users, and the audit log. */
export default function Admin({ tab }: { tab: string | undefined }) {
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Admin</h1>
          <p>Users of this server and what they did. Project members are managed on each project's Members page.</p>
        </div>
      </div>
      <nav className="tabs" aria-label="Admin">
        <Link href="/admin" className={tab !== 'audit' ? 'active' : undefined} aria-current={tab !== 'audit' ? 'page' : undefined}>
          Users
        </Link>
        <Link href="/admin/audit" className={tab === 'audit' ? 'active' : undefined} aria-current={tab === 'audit' ? 'page' : undefined}>
          Audit log
        </Link>
      </nav>
      {tab === 'audit' ? <Audit /> : <Users />}
    </div>
  );
}

/** A password the server generated or the UI made, to hand to its user: shown once. */
interface Handover {
  user: string;
  password: string;
  why: string;
}

function Users() {
  const { me, notify, refreshMe } = useApp();
  const users = useLoad((signal) => get<Answer<'auth', 'listUsers'>>('/api/users', undefined, { signal }), []);
  const [creating, setCreating] = useState(false);
  const [handover, setHandover] = useState<Handover | undefined>(undefined);
  const [resetting, setResetting] = useState<User | undefined>(undefined);
  const [deleting, setDeleting] = useState<User | undefined>(undefined);
  const action = useAction();

  const update = async (u: User, change: { admin?: boolean; disabled?: boolean }, done: string) => {
    const r = await action.run(() => patch<User>(`/api/users/${encodeURIComponent(u.name)}`, change));
    if (r) {
      notify(done);
      users.reload();
      if (u.name === me.user.name) refreshMe();
    }
  };

  return (
    <section aria-label="Users">
      <div className="row" style={{ marginBottom: 12 }}>
        <h2 style={{ margin: 0 }}>Users</h2>
        <span className="spacer" />
        <button className="primary" onClick={() => setCreating(true)}>
          New user…
        </button>
      </div>
      <ErrorBox error={action.error ?? users.error} />
      <table className="list" aria-label="Users">
        <thead>
          <tr>
            <th>User</th>
            <th>Role</th>
            <th>State</th>
            <th>Created</th>
            <th>Last sign-in</th>
            <th aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {users.data?.items.map((u) => (
            <tr key={u.name} data-user={u.name}>
              <td>
                <b>{u.name}</b>
                {u.display_name && <span className="muted"> · {u.display_name}</span>}
                {u.name === me.user.name && <span className="muted"> (you)</span>}
                {u.source === 'oidc' && <div className="small muted">signs in at the OpenID Connect issuer</div>}
              </td>
              <td>{u.admin ? <span className="badge state-running">admin</span> : 'user'}</td>
              <td>
                {u.disabled ? <span className="badge state-failed">disabled</span> : <span className="badge state-success">active</span>}
                {u.must_change_password && !u.disabled && <div className="small muted">must choose a password</div>}
              </td>
              <td>{formatTime(u.created_at)}</td>
              <td>{u.last_sign_in_at ? formatTime(u.last_sign_in_at) : 'never'}</td>
              <td className="actions">
                <button disabled={action.busy} onClick={() => void update(u, { admin: !u.admin }, u.admin ? `${u.name} is no longer an admin` : `${u.name} is an admin`)}>
                  {u.admin ? 'Remove admin' : 'Make admin'}
                </button>
                <button disabled={action.busy || u.name === me.user.name} onClick={() => void update(u, { disabled: !u.disabled }, u.disabled ? `${u.name} may sign in again` : `${u.name} is disabled: their sessions and tokens stopped working`)}>
                  {u.disabled ? 'Enable' : 'Disable'}
                </button>
                {u.source === 'local' && <button onClick={() => setResetting(u)}>Reset password…</button>}
                <button className="danger" disabled={u.name === me.user.name} onClick={() => setDeleting(u)}>
                  Delete…
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {users.data && users.data.total > users.data.items.length && (
        <p className="small muted">
          Showing {users.data.items.length} of {users.data.total} users.
        </p>
      )}
      {creating && (
        <CreateUser
          onClose={() => setCreating(false)}
          onCreated={(u, password) => {
            setCreating(false);
            users.reload();
            if (password) setHandover({ user: u.name, password, why: 'created' });
            else notify(`user ${u.name} created; they choose their own password at first sign-in`);
          }}
        />
      )}
      {resetting && (
        <ResetPassword
          user={resetting}
          onClose={() => setResetting(undefined)}
          onDone={(password) => {
            setResetting(undefined);
            users.reload();
            setHandover({ user: resetting.name, password, why: 'given a new password' });
          }}
        />
      )}
      {deleting && (
        <DeleteUser
          user={deleting}
          onClose={() => setDeleting(undefined)}
          onDone={() => {
            notify(`user ${deleting.name} deleted`);
            setDeleting(undefined);
            users.reload();
          }}
        />
      )}
      {handover && (
        <Dialog title={`${handover.user} ${handover.why}`} onClose={() => setHandover(undefined)} footer={<button onClick={() => setHandover(undefined)}>Done</button>}>
          <p>
            Give <b>{handover.user}</b> this password; they choose their own at their first sign-in.
          </p>
          <Secret label="Password" value={handover.password} warning="It is shown this once: copy it now. Hand it over in person or through a channel you trust." />
        </Dialog>
      )}
    </section>
  );
}

function CreateUser({ onClose, onCreated }: { onClose: () => void; onCreated: (u: User, password: string | null) => void }) {
  const [name, setName] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [password, setPassword] = useState('');
  const action = useAction();
  const tooShort = password.length > 0 && password.length < PASSWORD_MIN;
  const submit = async () => {
    const r = await action.run(() =>
      post<Answer<'auth', 'createUser', 201>>('/api/users', {
        name: name.trim(),
        ...(displayName.trim() ? { display_name: displayName.trim() } : {}),
        ...(admin ? { admin: true } : {}),
        ...(password ? { password } : {}),
      }),
    );
    if (r) onCreated(r.user, r.password);
  };
  return (
    <FormDialog title="New user" id="new-user" onClose={onClose} onSubmit={() => void submit()} submitLabel={<>Create</>} disabled={action.busy || !name.trim() || tooShort} error={action.error}>
      <label className="field">
        <span className="label">User name</span>
        <input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="jdoe" aria-invalid={action.fieldErrors.name ? true : undefined} />
        <span className="field-help">Letters, digits, ".", "_", "-" and "@" (an e-mail address works).</span>
        {action.fieldErrors.name && <span className="field-error">{action.fieldErrors.name}</span>}
      </label>
      <label className="field">
        <span className="label">Display name</span>
        <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} placeholder="Jane Doe" />
      </label>
      <label className="field">
        <span className="label">Password</span>
        <input type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} placeholder="leave empty to generate one" />
        <span className="field-help">Empty: the server generates one and shows it once. Either way, the user chooses their own at first sign-in.</span>
        {tooShort && <span className="field-error">at least {PASSWORD_MIN} characters</span>}
      </label>
      <label className="row">
        <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} />
        Platform admin (users, projects, extensions; a principal investigator of every project)
      </label>
    </FormDialog>
  );
}

function ResetPassword({ user, onClose, onDone }: { user: User; onClose: () => void; onDone: (password: string) => void }) {
  const action = useAction();
  const submit = async () => {
    const password = generatePassword();
    const r = await action.run(() => patch<User>(`/api/users/${encodeURIComponent(user.name)}`, { password }));
    if (r) onDone(password);
  };
  return (
    <Dialog
      title={`Reset the password of ${user.name}?`}
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="primary" disabled={action.busy} onClick={() => void submit()}>
            Reset password
          </button>
        </>
      }
    >
      <p>A new password is generated and shown to you once; {user.name} is signed out and chooses their own at their next sign-in. Their API tokens keep working.</p>
      <ErrorBox error={action.error} />
    </Dialog>
  );
}

function DeleteUser({ user, onClose, onDone }: { user: User; onClose: () => void; onDone: () => void }) {
  const [typed, setTyped] = useState('');
  const action = useAction();
  return (
    <Dialog
      title={`Delete ${user.name}?`}
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button
            className="danger solid"
            disabled={action.busy || typed !== user.name}
            onClick={() => void action.run(() => del(`/api/users/${encodeURIComponent(user.name)}`)).then((r) => r !== undefined && onDone())}
          >
            Delete user
          </button>
        </>
      }
    >
      <p>Their sessions, API tokens and project memberships go with them; their runs and data stay in their projects. This cannot be undone (disabling can).</p>
      <label className="field">
        <span className="label">Type {user.name} to confirm</span>
        <input autoFocus value={typed} onChange={(e) => setTyped(e.target.value)} />
      </label>
      <ErrorBox error={action.error} />
    </Dialog>
  );
}

const AUDIT_LIMIT = 50;
/** Actions the server writes (for the filter's suggestions; any other text filters too). */
const AUDIT_ACTIONS = [
  'sign-in', 'sign-in-failed', 'sign-in-refused', 'sign-out', 'password-changed',
  'user-created', 'user-updated', 'user-deleted', 'project-created', 'member-set', 'member-removed', 'token-created', 'token-revoked',
  'run-triggered', 'run-canceled', 'data-uploaded', 'data-deleted', 'dataset-deleted',
  'extension-uploaded', 'extension-installed', 'extension-uninstalled', 'application-launched', 'application-stopped',
];

function Audit() {
  const [filters, setFilters] = useState({ actor: '', action: '', project: '' });
  const [draft, setDraft] = useState(filters);
  const [offset, setOffset] = useState(0);
  const audit = useLoad((signal) => get<Answer<'auth', 'audit'>>('/api/audit', { ...filters, limit: AUDIT_LIMIT, offset }, { signal }), [filters, offset]);
  const total = audit.data?.total ?? 0;
  const field = (key: keyof typeof draft, label: string, list?: string) => (
    <input aria-label={label} placeholder={label.toLowerCase()} list={list} value={draft[key]} onChange={(e) => setDraft({ ...draft, [key]: e.target.value })} />
  );
  return (
    <section aria-label="Audit log">
      <form
        className="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters({ actor: draft.actor.trim(), action: draft.action.trim(), project: draft.project.trim() });
          setOffset(0);
        }}
      >
        {field('actor', 'Actor')}
        {field('action', 'Action', 'audit-actions')}
        <datalist id="audit-actions">
          {AUDIT_ACTIONS.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
        {field('project', 'Project')}
        <button type="submit">Filter</button>
        {(filters.actor || filters.action || filters.project) && (
          <button
            type="button"
            onClick={() => {
              const none = { actor: '', action: '', project: '' };
              setDraft(none);
              setFilters(none);
              setOffset(0);
            }}
          >
            Clear
          </button>
        )}
      </form>
      <ErrorBox error={audit.error} />
      {audit.data && audit.data.items.length === 0 ? (
        <div className="empty">No entries{filters.actor || filters.action || filters.project ? ' match these filters' : ''}.</div>
      ) : (
        <table className="list small" aria-label="Audit log">
          <thead>
            <tr>
              <th>When</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Project</th>
              <th>Target</th>
              <th>Outcome</th>
              <th>Address</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {audit.data?.items.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td>{formatTime(e.at)}</td>
                <td>{e.actor ?? <span className="muted">—</span>}</td>
                <td className="mono">{e.action}</td>
                <td>{e.project ?? ''}</td>
                <td className="mono">{e.target ?? ''}</td>
                <td>
                  <span className={`badge ${e.outcome === 'ok' ? 'state-success' : 'state-failed'}`}>{e.outcome}</span>
                </td>
                <td className="mono">{e.address ?? ''}</td>
                <td className="mono">{details(e)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > AUDIT_LIMIT && (
        <div className="row" style={{ marginTop: 12 }}>
          <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - AUDIT_LIMIT))}>
            Newer
          </button>
          <span className="muted">
            {offset + 1}–{Math.min(total, offset + AUDIT_LIMIT)} of {total}
          </span>
          <button disabled={offset + AUDIT_LIMIT >= total} onClick={() => setOffset(offset + AUDIT_LIMIT)}>
            Older
          </button>
        </div>
      )}
    </section>
  );
}

function details(e: AuditEntry): string {
  if (!e.details) return '';
  return Object.entries(e.details)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}
