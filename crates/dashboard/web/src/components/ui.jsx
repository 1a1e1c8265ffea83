// The dashboard's building blocks. Every input has a visible <label> tied to it, errors sit
// under the field they concern (aria-describedby, aria-invalid), every button has a name.
import { useEffect, useRef, useState } from 'preact/hooks';

let nextId = 0;
export function useId(prefix = 'f') {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}${++nextId}`;
  return ref.current;
}

export function FieldError({ id, error }) {
  if (!error) return null;
  return (
    <p id={id} class="field-error" role="alert">
      {error}
    </p>
  );
}

function Described({ id, hint, error, children }) {
  return (
    <>
      {children}
      {hint && (
        <p id={`${id}-hint`} class="hint">
          {hint}
        </p>
      )}
      <FieldError id={`${id}-error`} error={error} />
    </>
  );
}

function describedBy(id, hint, error) {
  return [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
}

export function TextField({ label, value, onInput, error, hint, type = 'text', class: cls, ...rest }) {
  const id = useId();
  return (
    <div class={`field ${cls || ''}`}>
      <label for={id}>{label}</label>
      <Described id={id} hint={hint} error={error}>
        <input
          id={id}
          type={type}
          value={value ?? ''}
          onInput={(e) => onInput(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={describedBy(id, hint, error)}
          {...rest}
        />
      </Described>
    </div>
  );
}

export function TextArea({ label, value, onInput, error, hint, rows = 3, ...rest }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <Described id={id} hint={hint} error={error}>
        <textarea
          id={id}
          rows={rows}
          value={value ?? ''}
          onInput={(e) => onInput(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={describedBy(id, hint, error)}
          {...rest}
        />
      </Described>
    </div>
  );
}

export function SelectField({ label, value, onChange, options, error, hint, class: cls, ...rest }) {
  const id = useId();
  return (
    <div class={`field ${cls || ''}`}>
      <label for={id}>{label}</label>
      <Described id={id} hint={hint} error={error}>
        <select
          id={id}
          value={value ?? ''}
          onChange={(e) => onChange(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={describedBy(id, hint, error)}
          {...rest}
        >
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      </Described>
    </div>
  );
}

export function Checkbox({ label, checked, onChange, hint, error, ...rest }) {
  const id = useId();
  return (
    <div class="field checkbox">
      <input
        id={id}
        type="checkbox"
        checked={!!checked}
        onChange={(e) => onChange(e.currentTarget.checked)}
        aria-describedby={describedBy(id, hint, error)}
        {...rest}
      />
      <label for={id}>{label}</label>
      <Described id={id} hint={hint} error={error} />
    </div>
  );
}

/** An on/off switch. Its accessible name is `label` (for a flag: the feature's name). */
export function Switch({ label, checked, onChange, disabled, describedBy: desc, busy }) {
  return (
    <button
      type="button"
      role="switch"
      class="switch"
      aria-checked={checked ? 'true' : 'false'}
      aria-label={label}
      aria-describedby={desc}
      aria-busy={busy ? 'true' : undefined}
      disabled={disabled}
      onClick={() => onChange(!checked)}
    >
      <span class="switch-track" aria-hidden="true">
        <span class="switch-thumb" />
      </span>
      <span class="switch-text" aria-hidden="true">
        {checked ? 'On' : 'Off'}
      </span>
    </button>
  );
}

export function Button({ kind = 'secondary', type = 'button', children, busy, class: cls, ...rest }) {
  return (
    <button type={type} class={`btn btn-${kind} ${cls || ''}`} aria-busy={busy ? 'true' : undefined} {...rest}>
      {children}
    </button>
  );
}

/** A whole-form or whole-page error, in words. */
export function Alert({ error, kind = 'error', children }) {
  const text = error ? error.message || String(error) : null;
  if (!text && !children) return null;
  return (
    <div class={`alert alert-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {text}
      {children}
    </div>
  );
}

export function Empty({ title, children, action }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <p class="empty-text">{children}</p>}
      {action}
    </div>
  );
}

export function Loading({ label = 'Loading…' }) {
  return (
    <p class="loading" role="status">
      {label}
    </p>
  );
}

export function PageHeader({ title, subtitle, actions }) {
  useEffect(() => {
    document.title = `${title} · Flagstone`;
  }, [title]);
  return (
    <header class="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <p class="subtitle">{subtitle}</p>}
      </div>
      {actions && <div class="page-actions">{actions}</div>}
    </header>
  );
}

/** A modal dialog (native <dialog>: focus is trapped, Escape closes). */
export function Dialog({ title, onClose, children, wide }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const onCancel = (e) => {
      e.preventDefault();
      onClose();
    };
    d.addEventListener('cancel', onCancel);
    return () => d.removeEventListener('cancel', onCancel);
  }, []);
  const titleId = useId('dlg');
  return (
    <dialog ref={ref} class={`dialog ${wide ? 'dialog-wide' : ''}`} aria-labelledby={titleId}>
      <div class="dialog-head">
        <h2 id={titleId}>{title}</h2>
        <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      <div class="dialog-body">{children}</div>
    </dialog>
  );
}

/** Previous/next pages of a `{count, next, previous}` list. */
export function Pager({ page, pageSize, count, onPage, label = 'items' }) {
  const pages = Math.max(1, Math.ceil(count / pageSize));
  if (count <= pageSize) return null;
  const from = (page - 1) * pageSize + 1;
  const to = Math.min(count, page * pageSize);
  return (
    <nav class="pager" aria-label="Pages">
      <span>
        {from}–{to} of {count.toLocaleString()} {label}
      </span>
      <Button onClick={() => onPage(page - 1)} disabled={page <= 1}>
        Previous page
      </Button>
      <span aria-current="page">
        Page {page} of {pages}
      </span>
      <Button onClick={() => onPage(page + 1)} disabled={page >= pages}>
        Next page
      </Button>
    </nav>
  );
}

/** Loads `fn()` when `deps` change; returns `{data, error, loading, reload, setData}`. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    fn().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return {
    ...state,
    reload: () => setTick((t) => t + 1),
    setData: (f) => setState((s) => ({ ...s, data: typeof f === 'function' ? f(s.data) : f })),
  };
}

/** A short-lived message at the bottom of the screen, announced to screen readers. */
let toastSetter = null;
export function Toasts() {
  const [items, setItems] = useState([]);
  toastSetter = setItems;
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`}>
          {t.text}
        </div>
      ))}
    </div>
  );
}
let toastId = 0;
export function toast(text, kind = 'ok') {
  if (!toastSetter) return;
  const id = ++toastId;
  toastSetter((items) => [...items.slice(-2), { id, text, kind }]);
  setTimeout(() => toastSetter((items) => items.filter((t) => t.id !== id)), 4000);
}

/**
 * Asks a person to type `name` before an irreversible deletion; `onConfirm` deletes (and may
 * throw an API error, shown in the dialog).
 */
export function ConfirmByName({ name, what, consequence, onConfirm, onClose }) {
  const [typed, setTyped] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await onConfirm();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title={`Delete ${name}?`} onClose={onClose}>
      <form class="form" onSubmit={submit}>
        {consequence && <p>{consequence}</p>}
        <Alert error={error} />
        <TextField label={`Type ${name} to confirm`} value={typed} onInput={setTyped} autocomplete="off" />
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="danger" type="submit" disabled={typed !== name}>
            Delete {what} for good
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
