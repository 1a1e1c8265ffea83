// Scheduled changes of an environment (docs/change-management.md): what will change when,
// by whom; what was applied (and how late), cancelled or refused. A pending change can be
// cancelled. Changes are scheduled from a feature's page ("Take effect: later").
import { useState } from 'preact/hooks';
import { del, get, query } from '../lib/api.js';
import { dateTime, duration, showValue, who } from '../lib/format.js';
import { Link } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import { Alert, Button, Dialog, Empty, Loading, PageHeader, Pager, SelectField, toast, useLoad } from '../components/ui.jsx';

const PAGE_SIZE = 25;

const STATES = [
  { value: 'pending', label: 'Waiting to apply' },
  { value: 'applied', label: 'Applied' },
  { value: 'parked', label: 'Refused (not applied)' },
  { value: 'cancelled', label: 'Cancelled' },
  { value: '', label: 'All' },
];
const STATE_CHIP = {
  pending: ['chip-info', 'waiting'],
  applied: ['chip-ok', 'applied'],
  parked: ['chip-bad', 'refused'],
  cancelled: ['chip-muted', 'cancelled'],
};

/** One scheduled feature-state update in words: "turn on; value “v2”". */
export function describeUpdate(u) {
  const parts = [];
  if (u.enabled !== undefined && u.enabled !== null) parts.push(u.enabled ? 'turn on' : 'turn off');
  if ('feature_state_value' in u) {
    const v = showValue(u.feature_state_value);
    parts.push(v === '' ? 'no value' : `value “${v}”`);
  }
  if (u.multivariate_feature_state_values) parts.push('variation allocations as chosen');
  return parts.length ? parts.join('; ') : 'save as it is';
}

/** Loads the names of the features a page of scheduled changes names. */
async function withFeatureNames(project, page) {
  const ids = [...new Set(page.results.flatMap((c) => c.feature_states.map((s) => s.feature)))];
  const named = await Promise.all(ids.map((id) => get(`/projects/${project}/features/${id}/`).then((f) => [id, f.name], () => [id, null])));
  return { ...page, names: Object.fromEntries(named) };
}

export function ScheduledChanges({ params }) {
  const place = usePlace();
  const env = place.environment;
  const { can } = usePermissions(place.project?.id, env.api_key);
  const [state, setState] = useState('pending');
  const [page, setPage] = useState(1);
  const list = useLoad(
    async () =>
      withFeatureNames(
        params.project,
        await get(`/environments/${env.api_key}/scheduled-changes/${query({ state, page, page_size: PAGE_SIZE })}`),
      ),
    [env.api_key, state, page],
  );
  return (
    <>
      <PageHeader
        title="Scheduled changes"
        subtitle={`Flag changes in ${env.name} that take effect at a set time. Schedule one from a feature's page: “Take effect later”.`}
      />
      <div class="toolbar">
        <SelectField
          label="Show"
          value={state}
          onChange={(v) => {
            setState(v);
            setPage(1);
          }}
          options={STATES}
        />
      </div>
      <Alert error={list.error} />
      {!list.data ? (
        !list.error && <Loading label="Loading scheduled changes…" />
      ) : list.data.count === 0 ? (
        <Empty title={state === 'pending' ? 'Nothing is scheduled' : 'No scheduled changes here'}>
          To schedule one, open a feature, change it, choose “Later” under “Take effect” and pick a date and time.
        </Empty>
      ) : (
        <>
          <ScheduledTable
            changes={list.data.results}
            names={list.data.names}
            env={env}
            project={params.project}
            canCancel={can('UPDATE_FEATURE_STATE')}
            onCancelled={list.reload}
          />
          <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="changes" />
        </>
      )}
    </>
  );
}

/** Scheduled changes as a table; `names` maps feature ids to names (absent: not shown). */
export function ScheduledTable({ changes, names, env, project, canCancel, onCancelled }) {
  const [cancelling, setCancelling] = useState(null);
  const label = (c) =>
    c.feature_states.map((s) => names?.[s.feature] ?? (names ? `a deleted feature (#${s.feature})` : '')).filter(Boolean).join(', ');
  return (
    <>
      <table class="table scheduled">
        <thead>
          <tr>
            <th scope="col">Takes effect</th>
            {names && <th scope="col">Feature</th>}
            <th scope="col">Change</th>
            <th scope="col" class="hide-phone">
              Scheduled by
            </th>
            <th scope="col" class="hide-phone">
              State
            </th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {changes.map((c) => {
            const [chip, word] = STATE_CHIP[c.state] || ['', c.state];
            return (
              <tr key={c.id}>
                <td>{dateTime(c.live_from)}</td>
                {names && (
                  <td>
                    {c.feature_states.map((s) =>
                      names[s.feature] ? (
                        <Link key={s.feature} class="feature-name" href={`/projects/${project}/environments/${env.api_key}/features/${s.feature}`}>
                          {names[s.feature]}
                        </Link>
                      ) : (
                        <span key={s.feature} class="muted">
                          a deleted feature
                        </span>
                      ),
                    )}
                  </td>
                )}
                <td>
                  {c.feature_states.map(describeUpdate).join('; ')}
                  <span class="show-phone-block">
                    <span class={`chip ${chip}`}>{word}</span>
                  </span>
                </td>
                <td class="hide-phone">{c.author ? who(c.author) : '—'}</td>
                <td class="hide-phone">
                  <span class={`chip ${chip}`}>{word}</span>
                  {c.state === 'applied' && c.delay_ms !== null && <div class="muted small">{duration(c.delay_ms)} after its time</div>}
                  {c.state === 'parked' && c.last_error && <div class="field-error small">{c.last_error}</div>}
                  {c.state === 'cancelled' && c.cancelled_by && <div class="muted small">by {who(c.cancelled_by)}</div>}
                </td>
                <td class="actions">
                  {canCancel && c.state === 'pending' && (
                    <Button kind="ghost" onClick={() => setCancelling(c)} aria-label={`Cancel the change of ${label(c) || 'this feature'} at ${dateTime(c.live_from)}`}>
                      Cancel
                    </Button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {cancelling && (
        <CancelDialog
          change={cancelling}
          what={label(cancelling)}
          env={env}
          onClose={() => setCancelling(null)}
          onCancelled={() => {
            setCancelling(null);
            onCancelled();
          }}
        />
      )}
    </>
  );
}

function CancelDialog({ change, what, env, onClose, onCancelled }) {
  const [error, setError] = useState(null);
  const cancel = async () => {
    setError(null);
    try {
      await del(`/environments/${env.api_key}/scheduled-changes/${change.id}/`);
      toast('Scheduled change cancelled: nothing will change');
      onCancelled();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title="Cancel this scheduled change?" onClose={onClose}>
      <p>
        {what ? `${what}: ` : ''}
        {change.feature_states.map(describeUpdate).join('; ')} in {env.name} at {dateTime(change.live_from)}. Cancelled, it will not happen.
      </p>
      <Alert error={error} />
      <div class="form-actions">
        <Button onClick={onClose}>Keep it</Button>
        <Button kind="danger" onClick={cancel}>
          Cancel the change
        </Button>
      </div>
    </Dialog>
  );
}
