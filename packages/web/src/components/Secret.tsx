import { useState } from 'react';

/**
 * A secret the server answers once (an API token, a generated password): shown in full,
 * with a Copy button and a warning that it will not be shown again.
 */
export function Secret({ label, value, warning }: { label: string; value: string; warning: string }) {
  const [copied, setCopied] = useState<'yes' | 'no' | undefined>(undefined);
  const copy = () => {
    // The clipboard needs a secure context (https, or loopback); else the user selects it.
    if (!navigator.clipboard) return setCopied('no');
    navigator.clipboard.writeText(value).then(
      () => setCopied('yes'),
      () => setCopied('no'),
    );
  };
  return (
    <div className="secret">
      <label className="field">
        <span className="label">{label}</span>
        <div className="row">
          <input className="mono" readOnly value={value} aria-label={label} onFocus={(e) => e.currentTarget.select()} style={{ flex: 1 }} />
          <button type="button" onClick={copy}>
            {copied === 'yes' ? 'Copied' : 'Copy'}
          </button>
        </div>
      </label>
      {copied === 'no' && <div className="small muted">The browser did not allow copying: select the text and copy it.</div>}
      <div className="warn-box" role="note">
        {warning}
      </div>
    </div>
  );
}
