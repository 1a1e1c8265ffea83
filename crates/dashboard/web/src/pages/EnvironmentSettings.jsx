// An environment's settings and keys: name, client traits, hiding disabled flags, sensitive
// data, the approvals its changes need (change requests), the client-side key, server-side
// keys (created keys are shown once), deleting it.
import { useState } from 'preact/hooks';
import { all, del, patch, post } from '../lib/api.js';
import { ago } from '../lib/format.js';
import { navigate } from '../lib/router.jsx';
import { AccessCard } from '../components/AccessCard.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import { Alert, Button, Checkbox, ConfirmByName, Dialog, PageHeader, SelectField, TextField, toast, useLoad } from '../components/ui.jsx';
import { approvalsWord, requiresRequests } from './ChangeRequests.jsx';

export function EnvironmentSettings({ params }) {
  const place = usePlace();
  const env = place.environment;
  const { can } = usePermissions(params.project, env.api_key);
  const admin = can('ADMIN');
  return (
    <>
      <PageHeader title="Environment settings" subtitle={`${env.name} in ${place.project.name}`} />
      <section class="card">
        <h2>Client-side key</h2>
        <p class="hint">Public: client-side SDKs (browsers, mobile apps) use it to fetch this environment's flags.</p>
        <code class="key">{env.api_key}</code>
      </section>
      <General key={env.api_key} env={env} canEdit={admin} onSaved={place.reloadPlace} />
      <Approvals key={`a${env.api_key}-${env.minimum_change_request_approvals}`} env={env} canEdit={admin} onSaved={place.reloadPlace} />
      <ServerKeys env={env} canEdit={admin} />
      <AccessCard scope={`/environments/${env.api_key}`} kind="environments" org={place.project.organisation} title={`Who has access to ${env.name}`} />
      {admin && (
        <DeleteEnvironment
          env={env}
          onDeleted={() => {
            place.reloadPlace();
            navigate(`/projects/${params.project}/settings`);
          }}
        />
      )}
    </>
  );
}

const HIDE = [
  { value: 'inherit', label: 'As the project says' },
  { value: 'true', label: 'Hide disabled flags' },
  { value: 'false', label: 'Send disabled flags' },
];

function General({ env, canEdit, onSaved }) {
  const [name, setName] = useState(env.name);
  const [clientTraits, setClientTraits] = useState(env.allow_client_traits);
  const [hide, setHide] = useState(env.hide_disabled_flags === null ? 'inherit' : String(env.hide_disabled_flags));
  const [sensitive, setSensitive] = useState(env.hide_sensitive_data);
  const [localOverrides, setLocalOverrides] = useState(env.use_identity_overrides_in_local_eval);
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await patch(`/environments/${env.api_key}/`, {
        name: name.trim(),
        allow_client_traits: clientTraits,
        hide_disabled_flags: hide === 'inherit' ? null : hide === 'true',
        hide_sensitive_data: sensitive,
        use_identity_overrides_in_local_eval: localOverrides,
      });
      toast('Environment saved');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>General</h2>
      <Alert error={error && !error.fields.name ? error : null} />
      <TextField label="Environment name" value={name} onInput={setName} error={error?.fields.name} disabled={!canEdit} />
      <SelectField label="Disabled flags" value={hide} onChange={setHide} options={HIDE} disabled={!canEdit} />
      <Checkbox
        label="Allow client-side SDKs to set traits"
        hint="Turn off to accept traits only from server-side keys."
        checked={clientTraits}
        onChange={setClientTraits}
        disabled={!canEdit}
      />
      <Checkbox label="Hide sensitive data from SDKs" checked={sensitive} onChange={setSensitive} disabled={!canEdit} />
      <Checkbox
        label="Send identity overrides to local-evaluation SDKs"
        checked={localOverrides}
        onChange={setLocalOverrides}
        disabled={!canEdit}
      />
      {canEdit && (
        <div class="form-actions">
          <Button kind="primary" type="submit">
            Save environment
          </Button>
        </div>
      )}
    </form>
  );
}

/**
 * How many approvals a change needs (`minimum_change_request_approvals`; empty: none, changes
 * take effect directly). Only environment admins set it, and only they then change directly.
 */
function Approvals({ env, canEdit, onSaved }) {
  const on = requiresRequests(env);
  const [value, setValue] = useState(on ? String(env.minimum_change_request_approvals) : '');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const text = value.trim();
  const problem = text !== '' && !/^\d+$/.test(text) ? 'Enter a whole number from 0 to 100, or leave it empty.' : text !== '' && Number(text) > 100 ? 'At most 100 approvals.' : null;
  const save = async (next) => {
    setBusy(true);
    setError(null);
    try {
      await patch(`/environments/${env.api_key}/`, { minimum_change_request_approvals: next });
      toast(next === null ? `${env.name} no longer requires approvals` : `Changes to ${env.name} now need ${approvalsWord(next)}`);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e) => {
    e.preventDefault();
    if (problem) return;
    save(text === '' ? null : Number(text));
  };
  return (
    <form class="card form" onSubmit={submit}>
      <h2>Change requests</h2>
      <p class="hint">
        {on
          ? `Changes to ${env.name} need ${approvalsWord(env.minimum_change_request_approvals)}: people who are not its administrators request them, and they take effect once approved and committed (see Change requests).`
          : `Changes to ${env.name} take effect directly. Set a number of approvals to require a second pair of eyes: then only its administrators change it directly, everyone else through change requests.`}
      </p>
      {canEdit ? (
        <>
          <Alert error={error && !error.fields.minimum_change_request_approvals ? error : null} />
          <TextField
            label="Minimum approvals for changes"
            type="number"
            min="0"
            max="100"
            step="1"
            inputMode="numeric"
            value={value}
            onInput={setValue}
            error={problem || error?.fields.minimum_change_request_approvals}
            hint="Empty: no change requests. 0 to 100: changes by non-administrators go through change requests with at least this many approvals."
            class="narrow"
          />
          <div class="form-actions">
            <Button kind="primary" type="submit" busy={busy} disabled={busy || !!problem}>
              Save approvals
            </Button>
            {on && (
              <Button onClick={() => save(null)} disabled={busy}>
                Stop requiring approvals
              </Button>
            )}
          </div>
        </>
      ) : (
        <p class="muted">Only administrators of {env.name} change this.</p>
      )}
    </form>
  );
}

function ServerKeys({ env, canEdit }) {
  const keys = useLoad(() => all(`/environments/${env.api_key}/api-keys/`), [env.api_key]);
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await post(`/environments/${env.api_key}/api-keys/`, { name: name.trim() }));
      setName('');
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (k) => {
    try {
      await del(`/environments/${env.api_key}/api-keys/${k.id}/`);
      toast(`Key ${k.name} revoked`);
      keys.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <section class="card">
      <h2>Server-side keys</h2>
      <p class="hint">Secret: server-side SDKs use them for local evaluation and server-only flags. Keep them out of browsers and apps.</p>
      <Alert error={keys.error} />
      {(keys.data || []).length === 0 ? (
        <p class="muted">No server-side keys.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Starts with</th>
              <th scope="col" class="hide-phone">
                Created
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.key_prefix}…</code>
                </td>
                <td class="hide-phone">{ago(k.created_at)}</td>
                <td class="actions">
                  {canEdit && (
                    <Button kind="ghost" onClick={() => revoke(k)} aria-label={`Revoke key ${k.name}`}>
                      Revoke
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canEdit && (
        <form class="form inline-form" onSubmit={create}>
          <Alert error={error && !error.fields.name ? error : null} />
          <TextField label="New key name" value={name} onInput={setName} error={error?.fields.name} placeholder="Backend" />
          <Button kind="primary" type="submit" disabled={!name.trim()}>
            Create server-side key
          </Button>
        </form>
      )}
      {created && (
        <Dialog title="Your new server-side key" onClose={() => setCreated(null)}>
          <p>Copy it now: it is shown only this once.</p>
          <code class="key" aria-label="New key">
            {created.key}
          </code>
          <div class="form-actions">
            <Button kind="primary" onClick={() => setCreated(null)}>
              I have copied it
            </Button>
          </div>
        </Dialog>
      )}
    </section>
  );
}

function DeleteEnvironment({ env, onDeleted }) {
  const [confirming, setConfirming] = useState(false);
  const remove = async () => {
    await del(`/environments/${env.api_key}/`);
    toast(`Environment ${env.name} deleted`);
    onDeleted();
  };
  return (
    <section class="card danger">
      <h2>Delete environment</h2>
      <p class="hint">SDKs using its keys stop receiving flags.</p>
      <Button kind="danger" onClick={() => setConfirming(true)}>
        Delete environment
      </Button>
      {confirming && <ConfirmByName name={env.name} what="environment" onConfirm={remove} onClose={() => setConfirming(false)} />}
    </section>
  );
}
