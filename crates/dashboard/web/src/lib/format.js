// How values, times and sizes are written on screen.

/** A time as the API gives it (ISO-8601 string, as Flagsmith's admin API does) or Unix ms. */
export function toMs(t) {
  return typeof t === 'string' ? Date.parse(t) : t;
}

export function ago(t) {
  if (t === null || t === undefined) return '—';
  const ms = toMs(t);
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

export function dateTime(t) {
  if (t === null || t === undefined) return '—';
  return new Date(toMs(t)).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A flag value as shown in a table cell. */
export function showValue(v) {
  if (v === null || v === undefined || v === '') return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** The kind of a flag value, for the value editor's type picker. */
export function kindOf(v) {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (v === null || v === undefined) return 'none';
  return 'text';
}

/** Reads the value editor's text as `kind`; returns `{value}` or `{error}`. */
export function parseValue(kind, text) {
  if (kind === 'none') return { value: null };
  if (kind === 'text') return { value: text };
  if (kind === 'boolean') {
    if (text === 'true' || text === 'false') return { value: text === 'true' };
    return { error: 'Choose true or false.' };
  }
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) return { error: 'Enter a number, such as 42 or 1.5.' };
  return { value: n };
}

export const VALUE_KINDS = [
  { value: 'text', label: 'Text' },
  { value: 'number', label: 'Number' },
  { value: 'boolean', label: 'True / false' },
  { value: 'none', label: 'No value' },
];

/** Who made a change, as the API names them (audit, history, schedules), in words. */
export function who(author) {
  if (!author) return 'unknown';
  if (author.startsWith('admin-key:')) return `the installation's admin key (${author.slice(10)})`;
  if (author.startsWith('api-key:')) return `API key “${author.slice(8)}”`;
  return author;
}
