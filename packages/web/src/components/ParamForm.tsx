import type { ExtensionParameter } from '../api.ts';

/** Initial values of install or launch parameters: the given ones, else the defaults. */
export function initialParams(params: Record<string, ExtensionParameter>, current?: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(params)) {
    const v = current?.[k] ?? p.default;
    if (v !== undefined) out[k] = p.type === 'list_multi' && typeof v === 'string' ? v.split(',').filter(Boolean) : v;
  }
  return out;
}

/** The manifest's parameters (string, boolean, list_single, list_multi) as form fields; errors by `params.<key>`. */
export function ParamForm({ params, value, onChange, errors }: { params: Record<string, ExtensionParameter>; value: Record<string, unknown>; onChange: (v: Record<string, unknown>) => void; errors: Record<string, string> }) {
  const entries = Object.entries(params);
  if (entries.length === 0) return <p className="muted">No parameters.</p>;
  return (
    <>
      {entries.map(([key, p]) => {
        const err = errors[`params.${key}`] ?? errors[`body.params.${key}`];
        const set = (v: unknown) => onChange({ ...value, [key]: v });
        const label = (
          <span className="label">
            {key}
            {p.required && ' *'}
          </span>
        );
        const help = (
          <>
            {p.description && <span className="field-help">{p.description}</span>}
            {err && (
              <span className="field-error" role="alert">
                {err}
              </span>
            )}
          </>
        );
        const v = value[key];
        if (p.type === 'boolean') {
          return (
            <div key={key} className="field">
              <label className="row">
                <input type="checkbox" aria-invalid={!!err} checked={v === true || v === 'true'} onChange={(e) => set(e.target.checked)} />
                {label}
              </label>
              {help}
            </div>
          );
        }
        if (p.type === 'list_single') {
          return (
            <label key={key} className="field">
              {label}
              <select aria-invalid={!!err} className={err ? 'invalid' : undefined} value={String(v ?? '')} onChange={(e) => set(e.target.value)}>
                {!p.required && <option value="">—</option>}
                {(p.options ?? []).map((o) => (
                  <option key={o}>{o}</option>
                ))}
              </select>
              {help}
            </label>
          );
        }
        if (p.type === 'list_multi') {
          const list = Array.isArray(v) ? (v as string[]) : [];
          return (
            <fieldset key={key} aria-invalid={!!err}>
              <legend>{key}</legend>
              {(p.options ?? []).map((o) => (
                <label key={o} className="row">
                  <input type="checkbox" checked={list.includes(o)} onChange={(e) => set(e.target.checked ? [...list, o] : list.filter((x) => x !== o))} />
                  {o}
                </label>
              ))}
              {help}
            </fieldset>
          );
        }
        return (
          <label key={key} className="field">
            {label}
            <input aria-invalid={!!err} className={err ? 'invalid' : undefined} value={String(v ?? '')} onChange={(e) => set(e.target.value)} />
            {help}
          </label>
        );
      })}
    </>
  );
}
