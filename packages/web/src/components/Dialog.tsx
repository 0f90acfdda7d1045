import { useEffect, useRef, type ReactNode } from 'react';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** A modal dialog: focus moves in and stays in (Tab cycles), Escape closes, focus returns after. */
export function Dialog(props: { title: string; onClose: () => void; children: ReactNode; footer?: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current!;
    const first = el.querySelector<HTMLElement>('[autofocus], input, select, textarea') ?? el.querySelector<HTMLElement>(FOCUSABLE);
    (first ?? el).focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        onClose.current();
      } else if (e.key === 'Tab') {
        const items = [...el.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((x) => x.offsetParent !== null);
        if (items.length === 0) return e.preventDefault();
        const i = items.indexOf(document.activeElement as HTMLElement);
        if (e.shiftKey && i <= 0) {
          e.preventDefault();
          items[items.length - 1]!.focus();
        } else if (!e.shiftKey && i === items.length - 1) {
          e.preventDefault();
          items[0]!.focus();
        }
      }
    };
    el.addEventListener('keydown', onKey);
    return () => {
      el.removeEventListener('keydown', onKey);
      before?.focus?.();
    };
  }, []);
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && props.onClose()}>
      <div ref={ref} className={`dialog${props.wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-label={props.title} tabIndex={-1}>
        <header>
          <h2>{props.title}</h2>
          <button className="icon" aria-label="Close" onClick={props.onClose}>
            ×
          </button>
        </header>
        <div className="dialog-body">{props.children}</div>
        {props.footer && <footer>{props.footer}</footer>}
      </div>
    </div>
  );
}

/**
 * A dialog whose body is a form, with Cancel and the form's submit button in its footer
 * (Enter in a field submits), and the error of the last attempt under the form.
 */
export function FormDialog(props: {
  title: string;
  /** The form's id, which the footer's submit button names. */
  id: string;
  onClose: () => void;
  onSubmit: () => void;
  submitLabel: ReactNode;
  disabled?: boolean;
  error?: string | null;
  wide?: boolean;
  children: ReactNode;
}) {
  return (
    <Dialog
      title={props.title}
      onClose={props.onClose}
      wide={props.wide}
      footer={
        <>
          <button onClick={props.onClose}>Cancel</button>
          <button className="primary" type="submit" form={props.id} disabled={props.disabled}>
            {props.submitLabel}
          </button>
        </>
      }
    >
      <form
        id={props.id}
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit();
        }}
      >
        {props.children}
      </form>
      <ErrorBox error={props.error} />
    </Dialog>
  );
}

export function ErrorBox({ error }: { error: string | undefined | null }) {
  if (!error) return null;
  return (
    <div className="error-box" role="alert">
      {error}
    </div>
  );
}
