// The audit log of a project: who changed what, filterable by environment, author and dates.
import { useEffect, useState } from 'preact/hooks';
import { get, query } from '../lib/api.js';
import { dateTime } from '../lib/format.js';
import { usePlace } from '../lib/session.jsx';
import { Alert, Empty, Loading, PageHeader, Pager, SelectField, TextField, useLoad } from '../components/ui.jsx';

const PAGE_SIZE = 50;

/** `2026-11-30` (a date input) -> ms at the start of that local day. */
const startOfDay = (d) => (d ? new Date(`${d}T00:00:00`).getTime() : undefined);

export function Audit({ params }) {
  const place = usePlace();
  const [environment, setEnvironment] = useState('');
  const [author, setAuthor] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState(null);
  useEffect(() => setPage(1), [environment, author, from, to]);
  const authors = useLoad(() => get(`/audit/authors/?project=${params.project}`), [params.project]);
  const until = to ? startOfDay(to) + 86_400_000 : undefined;
  const list = useLoad(
    () =>
      get(
        `/audit/${query({ project: params.project, environment, author, since: startOfDay(from), until, page, page_size: PAGE_SIZE })}`,
      ),
    [params.project, environment, author, from, to, page],
  );
  const envName = (id) => place.environments.find((e) => e.id === id)?.name;
  return (
    <>
      <PageHeader title="Audit log" subtitle={`Every change to ${place.project?.name}, newest first.`} />
      <div class="toolbar" role="search">
        <SelectField
          label="Environment"
          value={environment}
          onChange={setEnvironment}
          options={[{ value: '', label: 'All environments' }, ...place.environments.map((e) => ({ value: String(e.id), label: e.name }))]}
        />
        <SelectField
          label="Author"
          value={author}
          onChange={setAuthor}
          options={[{ value: '', label: 'Everyone' }, ...(authors.data || []).map((a) => ({ value: a, label: a }))]}
        />
        <TextField label="From" type="date" value={from} onInput={setFrom} />
        <TextField label="To" type="date" value={to} onInput={setTo} error={from && to && to < from ? 'The end is before the start.' : null} />
      </div>
      <Alert error={list.error} />
      {!list.data ? (
        <Loading />
      ) : list.data.count === 0 ? (
        <Empty title="No changes match">Changes appear here as soon as they are made.</Empty>
      ) : (
        <>
          <table class="table audit-table">
            <thead>
              <tr>
                <th scope="col" class="hide-phone">
                  When
                </th>
                <th scope="col">Change</th>
                <th scope="col" class="hide-phone">
                  Author
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.results.map((r) => (
                <tr key={r.id}>
                  <td class="nowrap hide-phone">{dateTime(r.created_date)}</td>
                  <td>
                    <div>{r.log}</div>
                    <div class="muted small">
                      {r.resource_type} {r.action}
                      {r.environment_id && envName(r.environment_id) ? ` · ${envName(r.environment_id)}` : ''}
                      <span class="show-phone">
                        {' '}
                        · {r.actor} · {dateTime(r.created_date)}
                      </span>
                    </div>
                    {(r.before_state || r.after_state) && (
                      <details open={open === r.id} onToggle={(e) => e.currentTarget.open && setOpen(r.id)}>
                        <summary>Before and after</summary>
                        <div class="diff">
                          <pre aria-label="Before">{pretty(r.before_state)}</pre>
                          <pre aria-label="After">{pretty(r.after_state)}</pre>
                        </div>
                      </details>
                    )}
                  </td>
                  <td class="hide-phone">{r.actor}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="changes" />
        </>
      )}
    </>
  );
}

function pretty(s) {
  if (!s) return '—';
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}
