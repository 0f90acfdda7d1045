import { useState } from 'react';
import { del, get, put, type Answer, type Member, type User } from '../api.ts';
import { roleLabel } from '../access.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox } from '../components/Dialog.tsx';
import { formatTime } from '../components/StateBadge.tsx';
import { useAction, useLoad } from '../hooks.ts';

const ROLES: Member['role'][] = ['scientist', 'principal-investigator'];

/**
 * A project's members (`/projects/<name>/members`): principal investigators (and admins)
 * add users with a role, change roles, remove members; scientists see the list.
 */
export default function Members({ project }: { project: string }) {
  const { me, notify, refreshMe } = useApp();
  const myRole = me.projects.find((p) => p.project === project)?.role;
  const canManage = myRole === 'principal-investigator';
  const members = useLoad((signal) => get<Answer<'auth', 'listMembers'>>(`/api/projects/${encodeURIComponent(project)}/members`, undefined, { signal }), [project]);
  // An admin picks from the users (a datalist); others type the name.
  const users = useLoad((signal) => (me.user.admin ? get<Answer<'auth', 'listUsers'>>('/api/users', undefined, { signal }) : Promise.resolve(undefined)), [me.user.admin]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<Member['role']>('scientist');
  const [removing, setRemoving] = useState<Member | undefined>(undefined);
  const add = useAction();
  const change = useAction();

  const afterChange = (who: string) => {
    members.reload();
    // My own role here may have changed.
    if (who === me.user.name) refreshMe();
  };

  const submitAdd = async () => {
    const name = user.trim();
    const m = await add.run(() => put<Member>(`/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(name)}`, { role }));
    if (m) {
      notify(`${m.user} is a ${roleLabel(m.role)} of ${project}`);
      setUser('');
      afterChange(m.user);
    }
  };

  const setRoleOf = async (m: Member, r: Member['role']) => {
    const done = await change.run(() => put<Member>(`/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(m.user)}`, { role: r }));
    if (done) {
      notify(`${m.user} is now a ${roleLabel(r)} of ${project}`);
      afterChange(m.user);
    }
  };

  const known = new Set(members.data?.items.map((m) => m.user));
  const candidates: User[] = users.data?.items.filter((u) => !known.has(u.name) && !u.disabled) ?? [];

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Members of {project}</h1>
          <p>
            {canManage
              ? 'Scientists read data, upload, run workflows and open applications; principal investigators also manage members, datasets and deletions.'
              : `You are a ${myRole ? roleLabel(myRole) : 'member'} here: the principal investigators of the project add and remove members.`}
          </p>
        </div>
      </div>
      {canManage && (
        <form
          className="filters"
          aria-label="Add a member"
          onSubmit={(e) => {
            e.preventDefault();
            void submitAdd();
          }}
        >
          <input aria-label="User name" placeholder="user name" list={candidates.length ? 'member-candidates' : undefined} value={user} onChange={(e) => setUser(e.target.value)} />
          {candidates.length > 0 && (
            <datalist id="member-candidates">
              {candidates.map((u) => (
                <option key={u.name} value={u.name}>
                  {u.display_name ?? u.name}
                </option>
              ))}
            </datalist>
          )}
          <select aria-label="Role" value={role} onChange={(e) => setRole(e.target.value as Member['role'])}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {roleLabel(r)}
              </option>
            ))}
          </select>
          <button className="primary" type="submit" disabled={add.busy || !user.trim()}>
            Add member
          </button>
        </form>
      )}
      <ErrorBox error={add.error ?? change.error ?? members.error} />
      {members.data && members.data.items.length === 0 ? (
        <div className="empty">No members yet.</div>
      ) : (
        <table className="list" aria-label="Members">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Added</th>
              {canManage && <th aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {members.data?.items.map((m) => (
              <tr key={m.user} data-member={m.user}>
                <td>
                  <b>{m.user}</b>
                  {m.display_name && <span className="muted"> · {m.display_name}</span>}
                  {m.user === me.user.name && <span className="muted"> (you)</span>}
                </td>
                <td>
                  {canManage ? (
                    <select aria-label={`Role of ${m.user}`} value={m.role} disabled={change.busy} onChange={(e) => void setRoleOf(m, e.target.value as Member['role'])}>
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {roleLabel(r)}
                        </option>
                      ))}
                    </select>
                  ) : (
                    roleLabel(m.role)
                  )}
                </td>
                <td>{formatTime(m.added_at)}</td>
                {canManage && (
                  <td className="actions">
                    <button className="danger" onClick={() => setRemoving(m)}>
                      Remove…
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {me.user.admin && <p className="small muted">As an admin you are a principal investigator of every project, member or not.</p>}
      {removing && (
        <RemoveDialog
          project={project}
          member={removing}
          onClose={() => setRemoving(undefined)}
          onDone={() => {
            notify(`${removing.user} is no longer a member of ${project}`);
            setRemoving(undefined);
            afterChange(removing.user);
          }}
        />
      )}
    </div>
  );
}

function RemoveDialog({ project, member, onClose, onDone }: { project: string; member: Member; onClose: () => void; onDone: () => void }) {
  const action = useAction();
  return (
    <Dialog
      title={`Remove ${member.user} from ${project}?`}
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button
            className="danger solid"
            disabled={action.busy}
            onClick={() => void action.run(() => del(`/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(member.user)}`)).then((r) => r !== undefined && onDone())}
          >
            Remove
          </button>
        </>
      }
    >
      <p>They no longer see the project, its data or its runs. What they ran and uploaded stays in the project.</p>
      <ErrorBox error={action.error} />
    </Dialog>
  );
}
