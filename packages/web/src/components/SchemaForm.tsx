/**
 * The parts of a JSON Schema the form reads. A workflow's forms come from the contract as
 * free-form objects (`Workflow.workflow_form`); this is how the UI reads them.
 */
export type JsonSchema = {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
  [k: string]: unknown;
};

/** Default values of a JSON Schema object (its properties' `default`s, nested). */
export function defaultsOf(schema: JsonSchema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema?.properties ?? {})) {
    if (p.default !== undefined) out[k] = p.default;
    else if (typeOf(p) === 'object' && p.properties) out[k] = defaultsOf(p);
  }
  return out;
}

function typeOf(s: JsonSchema): string {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null') ?? 'string';
  if (s.type) return s.type;
  if (s.enum) return typeof s.enum[0] === 'number' ? 'number' : 'string';
  if (s.properties) return 'object';
  return 'string';
}

const labelOf = (key: string, s: JsonSchema) => s.title ?? key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

interface Props {
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  /** Error messages by field path, e.g. `workflow_form.threshold`. */
  errors: Record<string, string>;
  /** The path prefix of this object's fields, e.g. `workflow_form`. */
  path: string;
  /** Properties rendered elsewhere (the data picker). */
  skip?: string[];
}

/** A form from a JSON Schema object: strings, numbers, integers, booleans, enums, lists, nested objects. */
export function SchemaForm({ schema, value, onChange, errors, path, skip = [] }: Props) {
  const props = Object.entries(schema.properties ?? {}).filter(([k]) => !skip.includes(k));
  if (props.length === 0) return null;
  const required = new Set(schema.required ?? []);
  return (
    <>
      {props.map(([key, s]) => {
        const where = `${path}.${key}`;
        const error = errors[where];
        const id = `f-${where.replace(/[^A-Za-z0-9_-]/g, '-')}`;
        const set = (v: unknown) => {
          const next = { ...value };
          if (v === undefined || v === '') delete next[key];
          else next[key] = v;
          onChange(next);
        };
        const t = typeOf(s);
        const label = (
          <span className="label">
            {labelOf(key, s)}
            {required.has(key) && <span aria-hidden="true"> *</span>}
          </span>
        );
        const help = (
          <>
            {s.description && <span className="field-help">{s.description}</span>}
            {error && (
              <span className="field-error" id={`${id}-err`} role="alert">
                {error}
              </span>
            )}
          </>
        );
        const common = { id, 'aria-invalid': !!error, 'aria-describedby': error ? `${id}-err` : undefined, className: error ? 'invalid' : undefined, 'data-field': where };
        const v = value[key];
        if (t === 'object') {
          return (
            <fieldset key={key}>
              <legend>{labelOf(key, s)}</legend>
              <SchemaForm schema={s} value={(v as Record<string, unknown>) ?? {}} onChange={(o) => set(o)} errors={errors} path={where} />
              {help}
            </fieldset>
          );
        }
        if (t === 'boolean') {
          return (
            <div key={key} className="field">
              <label className="row">
                <input type="checkbox" {...common} checked={v === true} onChange={(e) => set(e.target.checked)} />
                {label}
              </label>
              {help}
            </div>
          );
        }
        if (t === 'array') {
          const items = s.items ?? {};
          const list = Array.isArray(v) ? (v as unknown[]) : [];
          if (items.enum) {
            return (
              <fieldset key={key} {...common}>
                <legend>{labelOf(key, s)}</legend>
                {items.enum.map((opt) => (
                  <label key={String(opt)} className="row">
                    <input type="checkbox" checked={list.includes(opt)} onChange={(e) => set(e.target.checked ? [...list, opt] : list.filter((x) => x !== opt))} />
                    {String(opt)}
                  </label>
                ))}
                {help}
              </fieldset>
            );
          }
          const numeric = items.type === 'number' || items.type === 'integer';
          return (
            <label key={key} className="field">
              {label}
              <input
                {...common}
                value={list.join(', ')}
                placeholder="comma-separated"
                onChange={(e) => {
                  const parts = e.target.value.split(',').map((x) => x.trim()).filter(Boolean);
                  set(parts.length ? parts.map((x) => (numeric && x !== '' && !Number.isNaN(Number(x)) ? Number(x) : x)) : undefined);
                }}
              />
              {help}
            </label>
          );
        }
        if (s.enum) {
          return (
            <label key={key} className="field">
              {label}
              <select {...common} value={v === undefined ? '' : String(v)} onChange={(e) => set(e.target.value === '' ? undefined : s.enum!.find((o) => String(o) === e.target.value))}>
                {!required.has(key) && <option value="">—</option>}
                {s.enum.map((opt) => (
                  <option key={String(opt)} value={String(opt)}>
                    {String(opt)}
                  </option>
                ))}
              </select>
              {help}
            </label>
          );
        }
        if (t === 'number' || t === 'integer') {
          return (
            <label key={key} className="field">
              {label}
              <input
                {...common}
                type="number"
                step={t === 'integer' ? 1 : 'any'}
                min={s.minimum}
                max={s.maximum}
                value={v === undefined ? '' : String(v)}
                onChange={(e) => set(e.target.value === '' ? undefined : Number(e.target.value))}
              />
              {help}
            </label>
          );
        }
        const long = typeof s.maxLength === 'number' && s.maxLength > 200;
        return (
          <label key={key} className="field">
            {label}
            {long ? (
              <textarea {...common} value={v === undefined ? '' : String(v)} onChange={(e) => set(e.target.value)} />
            ) : (
              <input {...common} type="text" value={v === undefined ? '' : String(v)} onChange={(e) => set(e.target.value)} />
            )}
            {help}
          </label>
        );
      })}
    </>
  );
}
