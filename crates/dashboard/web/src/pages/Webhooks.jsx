// Webhooks of an environment or an organisation (docs/webhooks.md): where Flagstone POSTs
// when flags change; create, change, pause, delete; the signing secret is shown only in the
// answer that sets it; each webhook's delivery log with redeliver and a test event.
import { useEffect, useState } from 'preact/hooks';
import { del, get, patch, post, query } from '../lib/api.js';
import { ago, dateTime } from '../lib/format.js';
import { Link } from '../lib/router.jsx';
import { usePlace } from '../lib/session.jsx';
import {
  Alert, Button, Checkbox, Dialog, Empty, Loading, PageHeader, Pager, Switch, TextField, toast, useLoad,
} from '../components/ui.jsx';

/** Flagstone's opt-in events (the Flagsmith ones are always sent). */
const OPT_IN = [
  { key: 'ENVIRONMENT_PUBLISHED', label: 'Each publish to SDKs, with what changed (Flagstone’s own event)' },
  { key: 'QUEUE_HEALTH', label: 'Publishing pipeline health turns bad, and back (Flagstone’s own event)' },
  { key: 'CHANGE_REQUEST_CREATED', label: 'A change request is opened (Flagstone’s own event)' },
  { key: 'CHANGE_REQUEST_APPROVED', label: 'A change request is approved (Flagstone’s own event)' },
  { key: 'CHANGE_REQUEST_COMMITTED', label: 'A change request is committed (Flagstone’s own event)' },
];
const MASK = '********';

/** A secret for signing: 32 random bytes as hex, made in the browser. */
function newSecret() {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

function useScope(params) {
  const place = usePlace();
  if (params.env) {
    const env = place.environment;
    return {
      api: `/environments/${env.api_key}`,
      page: `/projects/${params.project}/environments/${env.api_key}/webhooks`,
      where: env.name,
      sends: `changes to flags in ${env.name}`,
      admins: 'environment administrators',
    };
  }
  const org = place.organisation;
  return {
    api: `/organisations/${params.org}`,
    page: `/organisations/${params.org}/webhooks`,
    where: org?.name ?? 'the organisation',
    sends: `changes to flags in every environment of ${org?.name ?? 'the organisation'}, and every audit log entry`,
    admins: 'organisation administrators',
  };
}

export function Webhooks({ params }) {
  const scope = useScope(params);
  const hooks = useLoad(() => get(`${scope.api}/webhooks/`), [scope.api]);
  const [editing, setEditing] = useState(null);
  const [secretShown, setSecretShown] = useState(null);
  const [deleting, setDeleting] = useState(null);
  const refused = hooks.error?.status === 403;
  const setEnabled = async (w, enabled) => {
    try {
      await patch(`${scope.api}/webhooks/${w.id}/`, { enabled });
      toast(enabled ? `Sending to ${w.url} again` : `Paused: nothing is sent to ${w.url}`);
      hooks.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const test = async (w) => {
    try {
      await post(`${scope.api}/webhooks/${w.id}/test/`, { event_type: 'FLAG_UPDATED' });
      toast(`Test event queued for ${w.url}: see its deliveries`);
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <>
      <PageHeader
        title="Webhooks"
        subtitle={`Flagstone sends an HTTP POST to these addresses on ${scope.sends}. Receivers written for Flagsmith work unchanged.`}
        actions={
          !refused && (
            <Button kind="primary" onClick={() => setEditing({})}>
              Add webhook
            </Button>
          )
        }
      />
      {refused ? (
        <Empty title={`Only ${scope.admins} can see webhooks here.`}>{hooks.error.message}</Empty>
      ) : (
        <Alert error={hooks.error} />
      )}
      {!hooks.data ? (
        !hooks.error && <Loading label="Loading webhooks…" />
      ) : hooks.data.length === 0 ? (
        <Empty title="No webhooks yet" action={<Button onClick={() => setEditing({})}>Add a webhook</Button>}>
          Add one to tell another system (chat, CI, your own service) when a flag changes.
        </Empty>
      ) : (
        <table class="table webhooks">
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col" class="hide-phone">
                Signed
              </th>
              <th scope="col">Sending</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {hooks.data.map((w) => (
              <tr key={w.id}>
                <td>
                  <Link href={`${scope.page}/${w.id}`} class="feature-name break">
                    {w.url}
                  </Link>
                  {w.events.map((e) => (
                    <span class="chip chip-info" key={e}>
                      + {e.toLowerCase().replaceAll('_', ' ')}
                    </span>
                  ))}
                  <div class="muted small">Added {ago(w.created_at)}</div>
                </td>
                <td class="hide-phone">{w.secret ? 'yes' : <span class="muted">no secret</span>}</td>
                <td>
                  <Switch label={`Send to ${w.url}`} checked={w.enabled} onChange={(on) => setEnabled(w, on)} />
                </td>
                <td class="actions">
                  <Button kind="ghost" onClick={() => test(w)} aria-label={`Send a test event to ${w.url}`}>
                    Test
                  </Button>
                  <Button kind="ghost" onClick={() => setEditing(w)} aria-label={`Edit the webhook ${w.url}`}>
                    Edit
                  </Button>
                  <Button kind="ghost" onClick={() => setDeleting(w)} aria-label={`Delete the webhook ${w.url}`}>
                    Delete
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <WebhookDialog
          hook={editing}
          scope={scope}
          onClose={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            hooks.reload();
            if (saved.secret && saved.secret !== MASK) setSecretShown(saved);
          }}
        />
      )}
      {secretShown && (
        <Dialog title="Keep the signing secret" onClose={() => setSecretShown(null)}>
          <p>
            Your receiver checks each delivery’s <code>X-Flagsmith-Signature</code> (or <code>X-Flagstone-Signature</code>) with this secret.
            It is shown only now; afterwards Flagstone shows it as {MASK}.
          </p>
          <code class="key" aria-label="Signing secret">
            {secretShown.secret}
          </code>
          <div class="form-actions">
            <Button kind="primary" onClick={() => setSecretShown(null)}>
              I have stored it
            </Button>
          </div>
        </Dialog>
      )}
      {deleting && (
        <Dialog title="Delete this webhook?" onClose={() => setDeleting(null)}>
          <p>Nothing more is sent to {deleting.url}; its delivery log goes with it.</p>
          <div class="form-actions">
            <Button onClick={() => setDeleting(null)}>Keep it</Button>
            <Button
              kind="danger"
              onClick={async () => {
                try {
                  await del(`${scope.api}/webhooks/${deleting.id}/`);
                  toast(`Webhook ${deleting.url} deleted`);
                  setDeleting(null);
                  hooks.reload();
                } catch (err) {
                  toast(err.message, 'error');
                }
              }}
            >
              Delete webhook
            </Button>
          </div>
        </Dialog>
      )}
    </>
  );
}

function WebhookDialog({ hook, scope, onClose, onSaved }) {
  const isNew = hook.id === undefined;
  const [url, setUrl] = useState(hook.url || '');
  const [enabled, setEnabled] = useState(isNew ? true : hook.enabled);
  const [secret, setSecret] = useState(isNew ? newSecret() : '');
  const [events, setEvents] = useState(new Set(hook.events || []));
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const body = { url: url.trim(), enabled, events: [...events] };
    if (isNew || secret) body.secret = secret;
    try {
      const saved = isNew ? await post(`${scope.api}/webhooks/`, body) : await patch(`${scope.api}/webhooks/${hook.id}/`, body);
      toast(isNew ? `Webhook ${saved.url} added` : `Webhook ${saved.url} saved`);
      onSaved(saved);
    } catch (err) {
      setError(err);
    }
  };
  const toggle = (key, on) => {
    const next = new Set(events);
    if (on) next.add(key);
    else next.delete(key);
    setEvents(next);
  };
  const known = ['url', 'secret', 'events'];
  return (
    <Dialog title={isNew ? `Add a webhook to ${scope.where}` : 'Edit webhook'} onClose={onClose} wide>
      <form class="form" onSubmit={save}>
        <Alert error={error && !known.some((k) => error.fields[k]) ? error : null} />
        <TextField
          label="Address (URL)"
          type="url"
          value={url}
          onInput={setUrl}
          error={error?.fields.url}
          placeholder="https://hooks.example.com/flags"
          hint="http or https. Addresses on private networks are refused unless the server allows them."
          required
        />
        <div class="row align-end">
          <TextField
            label={isNew ? 'Signing secret' : 'New signing secret'}
            value={secret}
            onInput={setSecret}
            error={error?.fields.secret}
            autocomplete="off"
            hint={
              isNew
                ? 'Signs every delivery so your receiver can check it came from Flagstone. Shown once after saving.'
                : hook.secret
                  ? 'Leave empty to keep the current secret (not shown again).'
                  : 'This webhook has no secret: deliveries are not signed.'
            }
            class="grow"
          />
          <Button onClick={() => setSecret(newSecret())}>Generate</Button>
        </div>
        <Checkbox label="Sending (uncheck to pause)" checked={enabled} onChange={setEnabled} />
        <fieldset>
          <legend>Events</legend>
          <p class="hint">Flag changes (FLAG_UPDATED, FLAG_DELETED) are always sent{scope.api.startsWith('/organisations') ? ', and audit log entries (AUDIT_LOG_CREATED)' : ''}. Also send:</p>
          {OPT_IN.map((o) => (
            <Checkbox key={o.key} label={o.label} hint={o.key} checked={events.has(o.key)} onChange={(on) => toggle(o.key, on)} />
          ))}
          {error?.fields.events && <p class="field-error">{error.fields.events}</p>}
        </fieldset>
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" disabled={!url.trim()}>
            {isNew ? 'Add webhook' : 'Save webhook'}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

const PAGE_SIZE = 25;
const DELIVERY_CHIP = {
  pending: ['chip-info', 'waiting'],
  running: ['chip-info', 'sending'],
  delivered: ['chip-ok', 'delivered'],
  parked: ['chip-bad', 'gave up'],
};

/** What each event type means, for the delivery log. */
const EVENT_WORDS = {
  FLAG_UPDATED: 'A flag changed',
  FLAG_DELETED: 'A flag or override was deleted',
  AUDIT_LOG_CREATED: 'An audit log entry',
  ENVIRONMENT_PUBLISHED: 'Published to SDKs',
  QUEUE_HEALTH: 'Pipeline health changed',
  CHANGE_REQUEST_CREATED: 'Change request opened',
  CHANGE_REQUEST_APPROVED: 'Change request approved',
  CHANGE_REQUEST_COMMITTED: 'Change request committed',
};
const eventWords = (d) => (d.event_id.startsWith('test-') ? 'Test event' : EVENT_WORDS[d.event_type] || d.event_type);

/** One webhook's delivery log, newest first, refreshed every few seconds. */
export function WebhookDeliveries({ params }) {
  const scope = useScope(params);
  const [page, setPage] = useState(1);
  const hook = useLoad(async () => {
    const list = await get(`${scope.api}/webhooks/`);
    const w = list.find((x) => String(x.id) === params.webhook);
    if (!w) throw new Error('This webhook does not exist (or was deleted).');
    return w;
  }, [scope.api, params.webhook]);
  const log = useLoad(
    () => get(`${scope.api}/webhooks/${params.webhook}/deliveries/${query({ page, page_size: PAGE_SIZE })}`),
    [scope.api, params.webhook, page],
  );
  useEffect(() => {
    const t = setInterval(log.reload, 3000);
    return () => clearInterval(t);
  }, [scope.api, params.webhook, page]);
  const redeliver = async (d) => {
    try {
      await post(`${scope.api}/webhooks/${params.webhook}/deliveries/${d.id}/redeliver/`);
      toast(`${d.event_type} queued again`);
      log.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const test = async () => {
    try {
      await post(`${scope.api}/webhooks/${params.webhook}/test/`, { event_type: 'FLAG_UPDATED' });
      toast('Test event queued');
      log.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const w = hook.data;
  return (
    <>
      <p class="crumbs">
        <Link href={scope.page}>← Webhooks of {scope.where}</Link>
      </p>
      <PageHeader
        title="Deliveries"
        subtitle={w ? `What Flagstone sent to ${w.url}${w.enabled ? '' : ' (paused)'}, newest first. A failed delivery is retried for a while, then given up; send it again with Redeliver.` : undefined}
        actions={w && <Button onClick={test}>Send test event</Button>}
      />
      <Alert error={hook.error || log.error} />
      {!log.data ? (
        !log.error && <Loading label="Loading deliveries…" />
      ) : log.data.count === 0 ? (
        <Empty title="Nothing sent yet">Events appear here when a flag changes. “Send test event” sends one now.</Empty>
      ) : (
        <>
          <table class="table deliveries">
            <thead>
              <tr>
                <th scope="col">Queued</th>
                <th scope="col">Event</th>
                <th scope="col">Result</th>
                <th scope="col" class="hide-phone">
                  Attempts
                </th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {log.data.results.map((d) => {
                const [chip, word] = DELIVERY_CHIP[d.state] || ['', d.state];
                return (
                  <tr key={d.id}>
                    <td title={dateTime(d.created_at)}>{ago(d.created_at)}</td>
                    <td>
                      {eventWords(d)}
                      <div class="muted small break hide-phone">
                        {d.event_type} · {d.event_id}
                      </div>
                    </td>
                    <td>
                      <span class={`chip ${chip}`}>{word}</span>
                      {d.response_status !== null && (
                        <span class="small">
                          HTTP {d.response_status}
                          {d.response_ms !== null && ` in ${d.response_ms} ms`}
                        </span>
                      )}
                      {d.last_error && <div class="field-error small">{d.last_error}</div>}
                    </td>
                    <td class="hide-phone">{d.attempts}</td>
                    <td class="actions">
                      {(d.state === 'parked' || d.state === 'delivered') && (
                        <Button kind="ghost" onClick={() => redeliver(d)} aria-label={`Redeliver ${d.event_type} ${d.event_id}`}>
                          Redeliver
                        </Button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} count={log.data.count} onPage={setPage} label="deliveries" />
        </>
      )}
    </>
  );
}
