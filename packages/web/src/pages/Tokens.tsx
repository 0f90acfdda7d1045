import { useState } from 'react';
import { del, get, post, type Answer, type ApiToken, type CreatedToken } from '../api.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox, FormDialog } from '../components/Dialog.tsx';
import { Secret } from '../components/Secret.tsx';
import { formatTime } from '../components/StateBadge.tsx';
import { useAction, useLoad } from '../hooks.ts';

const EXPIRIES = [
  { days: 0, label: 'never' },
  { days: 7, label: 'in 7 days' },
  { days: 30, label: 'in 30 days' },
  { days: 90, label: 'in 90 days' },
  { days: 365, label: 'in a year' },
];

/** The user's API tokens (`/tokens`): for the CLI and scripts, with the user's rights. */
export default function Tokens() {
  const { notify } = useApp();
  const tokens = useLoad((signal) => get<Answer<'auth', 'listTokens'>>('/api/tokens', undefined, { signal }), []);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedToken | undefined>(undefined);
  const [revoking, setRevoking] = useState<ApiToken | undefined>(undefined);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>API tokens</h1>
          <p>
            For the CLI and scripts: <code>Authorization: Bearer &lt;token&gt;</code>, or <code>TESSERA_TOKEN</code> for <code>tessera</code>. A token acts with your
            rights, in your projects.
          </p>
        </div>
        <span className="spacer" />
        <button className="primary" onClick={() => setCreating(true)}>
          New token…
        </button>
      </div>
      <ErrorBox error={tokens.error} />
      {tokens.data && tokens.data.items.length === 0 ? (
        <div className="empty">No tokens yet.</div>
      ) : (
        <table className="list" aria-label="API tokens">
          <thead>
            <tr>
              <th>Name</th>
              <th>Prefix</th>
              <th>Created</th>
              <th>Expires</th>
              <th>Last used</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {tokens.data?.items.map((t) => (
              <tr key={t.id} data-token={t.name}>
                <td>{t.name}</td>
                <td className="mono">{t.prefix}…</td>
                <td>{formatTime(t.created_at)}</td>
                <td>{t.expires_at ? formatTime(t.expires_at) : 'never'}</td>
                <td>{t.last_used_at ? formatTime(t.last_used_at) : 'never'}</td>
                <td className="actions">
                  <button className="danger" onClick={() => setRevoking(t)}>
                    Revoke…
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {creating && (
        <CreateDialog
          onClose={() => setCreating(false)}
          onCreated={(t) => {
            setCreating(false);
            setCreated(t);
            tokens.reload();
          }}
        />
      )}
      {created && (
        <Dialog title={`Token ${created.name}`} onClose={() => setCreated(undefined)} footer={<button onClick={() => setCreated(undefined)}>Done</button>}>
          <Secret label="Token" value={created.token} warning="Copy it now: it is shown this once and cannot be shown again. Whoever has it acts as you; keep it like a password, and revoke it here when it leaks or is no longer needed." />
        </Dialog>
      )}
      {revoking && (
        <RevokeDialog
          token={revoking}
          onClose={() => setRevoking(undefined)}
          onDone={() => {
            notify(`token ${revoking.name} revoked`);
            setRevoking(undefined);
            tokens.reload();
          }}
        />
      )}
    </div>
  );
}

function CreateDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (t: CreatedToken) => void }) {
  const [name, setName] = useState('');
  const [days, setDays] = useState(0);
  const action = useAction();
  const submit = async () => {
    const t = await action.run(() => post<CreatedToken>('/api/tokens', { name: name.trim(), ...(days ? { expires_in_days: days } : {}) }));
    if (t) onCreated(t);
  };
  return (
    <FormDialog title="New API token" id="new-token" onClose={onClose} onSubmit={() => void submit()} submitLabel={<>Create</>} disabled={action.busy || !name.trim()} error={action.error}>
      <label className="field">
        <span className="label">Name</span>
        <input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop CLI" maxLength={128} />
        <span className="field-help">What it is for, to recognise it later.</span>
      </label>
      <label className="field">
        <span className="label">Expires</span>
        <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
          {EXPIRIES.map((x) => (
            <option key={x.days} value={x.days}>
              {x.label}
            </option>
          ))}
        </select>
      </label>
    </FormDialog>
  );
}

function RevokeDialog({ token, onClose, onDone }: { token: ApiToken; onClose: () => void; onDone: () => void }) {
  const action = useAction();
  return (
    <Dialog
      title={`Revoke ${token.name}?`}
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="danger solid" disabled={action.busy} onClick={() => void action.run(() => del(`/api/tokens/${encodeURIComponent(token.id)}`)).then((r) => r !== undefined && onDone())}>
            Revoke
          </button>
        </>
      }
    >
      <p>
        Scripts and CLIs that use <span className="mono">{token.prefix}…</span> stop working at once.
      </p>
      <ErrorBox error={action.error} />
    </Dialog>
  );
}
