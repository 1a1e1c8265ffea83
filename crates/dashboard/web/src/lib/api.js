// The one way the dashboard reaches the server: the public admin API under /api/v1, signed in
// by the HttpOnly session cookie (which script cannot read). State-changing requests carry the
// CSRF token, kept only in this module's memory; a reload recovers it from GET /auth/session/.

let csrfToken = null;
let onSignedOut = () => {};

export function setCsrfToken(token) {
  csrfToken = token;
}

/** Called with no arguments when the server says the session is gone (401). */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

/** An API refusal, in words: `message` for the whole request, `fields` for single fields. */
export class ApiError extends Error {
  constructor(status, body) {
    const fields = fieldErrors(body);
    super(messageOf(status, body, fields));
    this.status = status;
    this.body = body;
    this.fields = fields;
    this.missingPermission = body && (body.missing_permission || body.permission);
  }
}

// Flagstone answers `{error, field, detail}` (or `{limit, max, detail}`); Flagsmith-style
// endpoints answer `{"field": ["message", …]}`. Both become `{field: "message"}`.
function fieldErrors(body) {
  const out = {};
  if (!body || typeof body !== 'object') return out;
  if (typeof body.field === 'string' && body.detail) out[body.field] = body.detail;
  if (body.limit && body.detail) out[`limits.${body.limit}`] = body.detail;
  for (const [k, v] of Object.entries(body)) {
    if (Array.isArray(v) && v.every((x) => typeof x === 'string') && k !== 'non_field_errors') {
      out[k] = v.join(' ');
    }
  }
  return out;
}

function messageOf(status, body, fields) {
  // The API's own words name an endpoint; a person needs to know what to do instead.
  if (body && body.error === 'change_request_required') {
    return 'This environment takes changes only through change requests (its administrators change it directly): request the change from the feature’s page, and it takes effect once approved and committed.';
  }
  if (body && typeof body.detail === 'string') {
    if (body.limit) return `${body.detail} (limit ${body.limit}: ${body.max})`;
    return body.detail;
  }
  if (body && Array.isArray(body.non_field_errors)) return body.non_field_errors.join(' ');
  const first = Object.values(fields)[0];
  if (first) return first;
  if (status === 403) return 'You do not have permission to do this.';
  if (status === 404) return 'Not found.';
  if (status >= 500) return 'The server failed; see its log.';
  return `The request failed (${status}).`;
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { detail: 'Cannot reach the Flagstone server. Check your connection.' });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 300) };
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !path.startsWith('/auth/')) onSignedOut();
    throw err;
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** Every page of a paginated list (for short lists: environments, segments, keys). */
export async function all(path, max = 5000) {
  const sep = path.includes('?') ? '&' : '?';
  let page = 1;
  const out = [];
  for (;;) {
    const res = await get(`${path}${sep}page=${page}&page_size=1000`);
    if (Array.isArray(res)) return res; // an unpaginated list
    out.push(...res.results);
    if (!res.next || out.length >= max) return out;
    page += 1;
  }
}

/** Builds `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
