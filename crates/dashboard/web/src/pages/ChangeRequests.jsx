// Change requests of an environment (docs/change-management.md, "Change requests"): an
// environment with a minimum number of approvals takes changes from non-admins only as
// requests. This page lists them (open or committed) with their approvals, and shows one: what
// committing it now would change (in words, as the history does), who approved it, and the
// Approve / Commit / Close actions — each disabled with the reason when the person may not use
// it. Requests are opened from a feature's page ("Request this change"). A request may change
// segment overrides too (created, changed, deleted; named by segment) and may name assigned
// approvers, shown waiting until they approve.
import { useState } from 'preact/hooks';
import { del, get, post, query } from '../lib/api.js';
import { dateTime, who } from '../lib/format.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace, useSession } from '../lib/session.jsx';
import { Alert, Button, Dialog, Empty, Loading, PageHeader, Pager, SelectField, toast, useLoad } from '../components/ui.jsx';
import { FIELD, shown } from '../components/History.jsx';
import { describeUpdate } from './ScheduledChanges.jsx';

const PAGE_SIZE = 25;

const SHOW = [
  { value: 'false', label: 'Open' },
  { value: 'true', label: 'Committed' },
  { value: '', label: 'Open and committed' },
];

/** Whether an environment takes changes from `admin`-less people only as change requests. */
export function requiresRequests(env) {
  return env?.minimum_change_request_approvals !== null && env?.minimum_change_request_approvals !== undefined;
}

/** "1 approval" / "2 approvals". */
export function approvalsWord(n) {
  return `${n} approval${n === 1 ? '' : 's'}`;
}

/** Where a request is in its life, in a word and a chip class. */
export function stateOf(cr) {
  if (cr.status === 'committed') return cr.scheduled_change ? ['chip-info', 'committed, scheduled'] : ['chip-ok', 'committed'];
  if (cr.status === 'closed') return ['chip-muted', 'closed'];
  if (cr.conflicts?.length) return ['chip-bad', 'out of date'];
  if (cr.is_approved) return ['chip-ok', 'approved, ready to commit'];
  return ['chip-warn', 'waiting for approval'];
}

/** Approvals given (assignees who have not approved yet are not approvals). */
export function approvedCount(cr) {
  return cr.approvals.filter((a) => a.approved_at).length;
}

/** "1 of 2" (or "1 (none needed)" when the environment stopped requiring approvals). */
function approvalCount(cr) {
  const n = approvedCount(cr);
  return cr.required_approvals === null || cr.required_approvals === undefined ? `${n} (none needed)` : `${n} of ${cr.required_approvals}`;
}

/** Names of the features `ids` (a deleted feature: null). */
async function featureNames(project, ids) {
  const named = await Promise.all(
    [...new Set(ids)].map((id) => get(`/projects/${project}/features/${id}/`).then((f) => [id, f.name], () => [id, null])),
  );
  return Object.fromEntries(named);
}

/** Names of the segments `ids` (a deleted segment: null). */
async function segmentNames(project, ids) {
  const named = await Promise.all(
    [...new Set(ids.filter((id) => id !== null && id !== undefined))].map((id) =>
      get(`/projects/${project}/segments/${id}/`).then((s) => [id, s.name], () => [id, null]),
    ),
  );
  return Object.fromEntries(named);
}

/** The segments a request's updates and diff name. */
const segmentsOf = (cr) => [...cr.feature_states.map((s) => s.feature_segment?.segment), ...(cr.diff || []).map((d) => d.segment)];

const nameOf = (names, id) => names[id] ?? `a deleted feature (#${id})`;
const segmentOf = (segments, id) => (segments?.[id] ? `“${segments[id]}”` : `segment #${id}`);

/** What one update of a request does: "turn on" / "override for “pro”: value “x”, position 1". */
export function describeItem(s, segments) {
  if (!s.feature_segment) return describeUpdate(s);
  const what = s.delete_override ? 'delete it' : describeUpdate(s);
  const at = typeof s.feature_segment.priority === 'number' ? `; position ${s.feature_segment.priority + 1}` : '';
  return `override for ${segmentOf(segments, s.feature_segment.segment)}: ${what}${at}`;
}

/** A whole segment override, in words: "on, “beta”". */
function overrideWords(o) {
  return `${o.enabled ? 'on' : 'off'}, value ${shown('feature_state_value', o.feature_state_value)}`;
}

export function ChangeRequests({ params }) {
  const env = usePlace().environment;
  const [committed, setCommitted] = useState('false');
  const [page, setPage] = useState(1);
  const list = useLoad(async () => {
    const res = await get(`/environments/${env.api_key}/list-change-requests/${query({ committed, page, page_size: PAGE_SIZE })}`);
    const names = await featureNames(params.project, res.results.flatMap((c) => c.feature_states.map((s) => s.feature)));
    const segments = await segmentNames(params.project, res.results.flatMap(segmentsOf));
    return { ...res, names, segments };
  }, [env.api_key, committed, page]);
  const base = `/projects/${params.project}/environments/${env.api_key}`;
  const needed = env.minimum_change_request_approvals;
  return (
    <>
      <PageHeader
        title="Change requests"
        subtitle={
          requiresRequests(env)
            ? `Changes to ${env.name} need ${approvalsWord(needed)} before they take effect (its administrators change it directly). Request a change from a feature's page.`
            : `${env.name} does not require approvals: changes take effect directly. Its administrators can require them in Settings & keys.`
        }
      />
      <div class="toolbar">
        <SelectField
          label="Show"
          value={committed}
          onChange={(v) => {
            setCommitted(v);
            setPage(1);
          }}
          options={SHOW}
        />
      </div>
      <Alert error={list.error} />
      {!list.data ? (
        !list.error && <Loading label="Loading change requests…" />
      ) : list.data.count === 0 ? (
        <Empty title={committed === 'false' ? 'No open change requests' : 'No change requests here'}>
          {requiresRequests(env)
            ? 'To request one, open a feature, change its state and choose “Request this change”.'
            : `Change requests are needed once ${env.name} requires approvals.`}
        </Empty>
      ) : (
        <>
          <table class="table change-requests">
            <thead>
              <tr>
                <th scope="col">Request</th>
                <th scope="col" class="hide-phone">
                  Changes
                </th>
                <th scope="col" class="hide-phone">
                  By
                </th>
                <th scope="col">Approvals</th>
                <th scope="col" class="hide-phone">
                  State
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.results.map((cr) => {
                const [chip, word] = stateOf(cr);
                return (
                  <tr key={cr.id}>
                    <td>
                      <Link class="cr-title" href={`${base}/change-requests/${cr.id}`}>
                        {cr.title}
                      </Link>
                      <div class="muted small">opened {dateTime(cr.created_at)}</div>
                      <span class="show-phone-block small">
                        {cr.feature_states.map((s) => `${nameOf(list.data.names, s.feature)}: ${describeItem(s, list.data.segments)}`).join('; ')}
                      </span>
                      <span class="show-phone-block">
                        <span class={`chip ${chip}`}>{word}</span>
                      </span>
                    </td>
                    <td class="hide-phone">
                      {cr.feature_states.map((s, i) => (
                        <div key={i}>
                          <strong>{nameOf(list.data.names, s.feature)}</strong>: {describeItem(s, list.data.segments)}
                        </div>
                      ))}
                      {cr.live_from && <div class="muted small">takes effect {dateTime(cr.live_from)}</div>}
                    </td>
                    <td class="hide-phone">{who(cr.author)}</td>
                    <td>{approvalCount(cr)}</td>
                    <td class="hide-phone">
                      <span class={`chip ${chip}`}>{word}</span>
                      {cr.status === 'committed' && cr.committed_by && <div class="muted small">by {who(cr.committed_by)}</div>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="change requests" />
        </>
      )}
    </>
  );
}

/** One line per field a request changes: "gift_cards — On/off: off → on"; for a segment
 * override "gift_cards, override for “pro” — Value: a → b", or the override created or deleted
 * as a whole. */
function ChangeLines({ rows, names, segments, before, after }) {
  return (
    <ul class="changes">
      {rows.map((r) => {
        const what = (
          <>
            <strong>{nameOf(names, r.feature)}</strong>
            {r.segment !== undefined && r.segment !== null && <>, override for {segmentOf(segments, r.segment)}</>}
          </>
        );
        if (r.field === 'segment_override') {
          const [was, becomes] = [r[before], r[after]];
          return (
            <li key={`${r.feature}-${r.segment}-${r.field}`}>
              {what} —{' '}
              {becomes ? (
                <>
                  created: <ins>{overrideWords(becomes)}</ins>
                </>
              ) : was ? (
                <>
                  deleted: <del>{overrideWords(was)}</del>
                </>
              ) : (
                'nothing'
              )}
            </li>
          );
        }
        return (
          <li key={`${r.feature}-${r.segment}-${r.field}`}>
            {what} — {FIELD[r.field] || r.field}: <del>{shown(r.field, r[before])}</del> → <ins>{shown(r.field, r[after])}</ins>
          </li>
        );
      })}
    </ul>
  );
}

export function ChangeRequestPage({ params }) {
  const place = usePlace();
  const env = place.environment;
  const { user } = useSession();
  const { can, loaded } = usePermissions(place.project?.id, env.api_key);
  const list = `/projects/${params.project}/environments/${env.api_key}/change-requests`;
  const data = useLoad(async () => {
    const cr = await get(`/change-requests/${params.request}/`);
    const names = await featureNames(params.project, cr.feature_states.map((s) => s.feature));
    const segments = await segmentNames(params.project, segmentsOf(cr));
    return { cr, names, segments };
  }, [params.request]);
  const [error, setError] = useState(null);
  const [conflicts, setConflicts] = useState(null);
  const [busy, setBusy] = useState(null);
  const [closing, setClosing] = useState(false);
  if (data.error) return <Alert error={data.error} />;
  if (!data.data) return <Loading label="Loading the change request…" />;
  const { cr, names, segments } = data.data;
  const [chip, word] = stateOf(cr);
  const open = cr.status === 'open';
  const mine = (cr.user !== null && cr.user === user?.id) || cr.author === user?.email;
  const approver = can('APPROVE_CHANGE_REQUEST');
  const approvedByMe = cr.approvals.some((a) => a.user === user?.id && a.approved_at);
  const stale = cr.conflicts.length > 0;

  const approveWhy = !loaded
    ? 'Checking your permissions…'
    : mine
      ? 'You opened this request: someone else must approve it.'
      : !approver
        ? `Approving needs the “Approve change request” permission in ${env.name}.`
        : approvedByMe
          ? 'You have approved it.'
          : null;
  const commitWhy = !loaded
    ? 'Checking your permissions…'
    : !mine && !approver
      ? `Committing is for its author or someone with the “Approve change request” permission in ${env.name}.`
      : stale
        ? 'What it changes was changed since it was opened: close it and request the change again.'
        : !cr.is_approved
          ? `It needs ${approvalsWord(cr.required_approvals ?? 0)} first; it has ${approvedCount(cr)}.`
          : null;
  const closeWhy = loaded && !mine && !approver ? 'Closing is for its author or someone with the “Approve change request” permission.' : null;

  const act = async (what, fn) => {
    setBusy(what);
    setError(null);
    setConflicts(null);
    try {
      await fn();
      data.reload();
    } catch (err) {
      setError(err);
      if (err.status === 409 && Array.isArray(err.body?.conflicts)) setConflicts(err.body.conflicts);
    } finally {
      setBusy(null);
    }
  };
  const approve = () =>
    act('approve', async () => {
      await post(`/change-requests/${cr.id}/approve/`);
      toast(`You approved “${cr.title}”`);
    });
  const commit = () =>
    act('commit', async () => {
      const done = await post(`/change-requests/${cr.id}/commit/`);
      toast(done?.scheduled_change ? `“${cr.title}” committed: it takes effect ${dateTime(cr.live_from)}` : `“${cr.title}” committed: ${env.name} changed`);
    });

  return (
    <>
      <p class="crumbs">
        <Link href={list}>← Change requests of {env.name}</Link>
      </p>
      <PageHeader title={cr.title} subtitle={`Requested by ${who(cr.author)} on ${dateTime(cr.created_at)}, for ${env.name}.`} />
      <section class="card" aria-labelledby="cr-state">
        <h2 id="cr-state">
          State: <span class={`chip ${chip}`}>{word}</span>
        </h2>
        {cr.description && <p class="pre-wrap">{cr.description}</p>}
        <p>
          {cr.live_from
            ? `Takes effect ${dateTime(cr.live_from)} once committed (if that time has passed, at once).`
            : 'Takes effect as soon as it is committed.'}
        </p>
        {cr.status === 'committed' && (
          <p>
            Committed by {who(cr.committed_by)} on {dateTime(cr.committed_at)}
            {cr.scheduled_change ? '; it is listed under Scheduled changes until it applies.' : '.'}
          </p>
        )}
        {cr.status === 'closed' && (
          <p>
            Closed without being applied{cr.deleted_by ? ` by ${who(cr.deleted_by)}` : ''} on {dateTime(cr.deleted_at)}.
          </p>
        )}
      </section>
      <section class="card" aria-labelledby="cr-changes">
        <h2 id="cr-changes">{open ? `What committing it now changes in ${env.name}` : 'What it sets'}</h2>
        {open ? (
          cr.diff.length ? (
            <ChangeLines rows={cr.diff} names={names} segments={segments} before="current" after="proposed" />
          ) : (
            <p class="muted">Nothing: {env.name} already has this configuration.</p>
          )
        ) : (
          <ul class="changes">
            {cr.feature_states.map((s, i) => (
              <li key={i}>
                <strong>{nameOf(names, s.feature)}</strong>: {describeItem(s, segments)}
              </li>
            ))}
          </ul>
        )}
        {open && stale && (
          <div class="alert alert-error" role="alert">
            Changed by someone else since this request was opened, so it cannot be committed:
            <ChangeLines rows={cr.conflicts} names={names} segments={segments} before="when_opened" after="now" />
            Close it and request the change again against the current state.
          </div>
        )}
      </section>
      <section class="card" aria-labelledby="cr-approvals">
        <h2 id="cr-approvals">Approvals: {approvalCount(cr)}</h2>
        {cr.approvals.length === 0 ? (
          <p class="muted">No one has approved it yet.</p>
        ) : (
          <ul class="approvals">
            {cr.approvals.map((a) => (
              <li key={a.id}>
                {who(a.approver)}
                {a.approved_at ? ` approved on ${dateTime(a.approved_at)}` : ' — assigned, not approved yet'}
                {a.required && a.approved_at && <span class="muted small"> (assigned)</span>}
              </li>
            ))}
          </ul>
        )}
        <Alert error={error} />
        {conflicts && conflicts.length > 0 && <ChangeLines rows={conflicts} names={names} segments={segments} before="when_opened" after="now" />}
        {open && (
          <>
            <div class="form-actions">
              <Button
                kind="primary"
                onClick={approve}
                busy={busy === 'approve'}
                disabled={!!approveWhy || !!busy}
                aria-describedby={approveWhy ? 'approve-why' : undefined}
              >
                Approve
              </Button>
              <Button
                kind="primary"
                onClick={commit}
                busy={busy === 'commit'}
                disabled={!!commitWhy || !!busy}
                aria-describedby={commitWhy ? 'commit-why' : undefined}
              >
                Commit
              </Button>
              <Button kind="danger" onClick={() => setClosing(true)} disabled={!!closeWhy || !!busy} aria-describedby={closeWhy ? 'close-why' : undefined}>
                Close request
              </Button>
            </div>
            {approveWhy && (
              <p id="approve-why" class="hint">
                Approve: {approveWhy}
              </p>
            )}
            {commitWhy && (
              <p id="commit-why" class="hint">
                Commit: {commitWhy}
              </p>
            )}
            {closeWhy && (
              <p id="close-why" class="hint">
                Close: {closeWhy}
              </p>
            )}
          </>
        )}
      </section>
      {closing && (
        <CloseDialog
          cr={cr}
          onClose={() => setClosing(false)}
          onClosed={() => {
            setClosing(false);
            navigate(list);
          }}
        />
      )}
    </>
  );
}

function CloseDialog({ cr, onClose, onClosed }) {
  const [error, setError] = useState(null);
  const close = async () => {
    setError(null);
    try {
      await del(`/change-requests/${cr.id}/`);
      toast(`“${cr.title}” closed: nothing was changed`);
      onClosed();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title="Close this change request?" onClose={onClose}>
      <p>“{cr.title}” will not be applied, and can no longer be approved or committed. It stays readable here.</p>
      <Alert error={error} />
      <div class="form-actions">
        <Button onClick={onClose}>Keep it open</Button>
        <Button kind="danger" onClick={close}>
          Close the request
        </Button>
      </div>
    </Dialog>
  );
}
