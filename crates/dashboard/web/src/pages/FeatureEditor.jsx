// One feature in one environment: its state (switch, value, variation allocations; saved now
// or scheduled for later — or, where the environment requires approvals and the person is not
// its admin, requested as a change request), its pending scheduled changes, its variations, its segment overrides
// in priority order, its usage, its history with restore, its settings, archive and delete.
import { useState } from 'preact/hooks';
import { all, del, get, patch, post } from '../lib/api.js';
import { dateTime, showValue } from '../lib/format.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import {
  Alert, Button, Checkbox, ConfirmByName, Loading, PageHeader, Switch, TextArea, TextField, toast, useLoad,
} from '../components/ui.jsx';
import { ValueEditor, readValue, valueState } from '../components/ValueEditor.jsx';
import { SegmentOverrides } from '../components/SegmentOverrides.jsx';
import { HistoryCard } from '../components/History.jsx';
import { UsageCard } from '../components/Usage.jsx';
import { ScheduledTable } from './ScheduledChanges.jsx';
import { loadTags, tagIdsFor, tagLabels } from '../lib/tags.js';
import { approvalsWord, requiresRequests } from './ChangeRequests.jsx';

export function FeatureEditor({ params }) {
  const place = usePlace();
  const env = place.environment;
  const perms = usePermissions(place.project?.id, env.api_key);
  const base = `/projects/${params.project}/environments/${env.api_key}/features`;
  const data = useLoad(async () => {
    const feature = await get(`/projects/${params.project}/features/${params.feature}/`);
    const states = await get(`/environments/${env.api_key}/featurestates/?feature=${params.feature}`);
    return { feature, state: states.results[0] };
  }, [params.feature, env.api_key]);
  // Bumped by every change made here, so the parts showing state (history, overrides,
  // schedule) read it again.
  const [rev, setRev] = useState(0);
  const changed = () => {
    data.reload();
    setRev((r) => r + 1);
  };
  if (data.error) return <Alert error={data.error} />;
  if (!data.data) return <Loading />;
  const { feature, state } = data.data;
  // Where approvals are required, only the environment's admins save directly; anyone else
  // with "Create change request" requests the change instead.
  const viaRequests = requiresRequests(env) && perms.loaded && !perms.can('ADMIN');
  return (
    <>
      <p class="crumbs">
        <Link href={base}>← Features of {env.name}</Link>
      </p>
      <PageHeader
        title={feature.name}
        subtitle={feature.description || (feature.type === 'MULTIVARIATE' ? 'Multivariate feature' : 'Feature')}
      />
      {feature.is_archived && <p class="notice">This feature is archived: hidden from the features list, still served to SDKs.</p>}
      <StateCard
        key={`s${rev}-${stateKey(state)}`}
        feature={feature}
        state={state}
        env={env}
        project={params.project}
        viaRequests={viaRequests}
        canEdit={perms.can(viaRequests ? 'CREATE_CHANGE_REQUEST' : 'UPDATE_FEATURE_STATE')}
        onSaved={changed}
      />
      <PendingChanges key={`p${rev}`} feature={feature} env={env} project={params.project} canCancel={perms.can('UPDATE_FEATURE_STATE')} />
      <Variations feature={feature} project={params.project} canEdit={perms.can('CREATE_FEATURE', 'project')} onSaved={changed} />
      <SegmentOverrides
        key={`o${rev}`}
        feature={feature}
        env={env}
        project={params.project}
        canEdit={perms.can('MANAGE_SEGMENT_OVERRIDES') || perms.can('UPDATE_FEATURE_STATE')}
      />
      <UsageCard feature={feature} env={env} project={params.project} lastEvaluatedAt={state.last_evaluated_at} />
      <HistoryCard
        key={`h${rev}`}
        feature={feature}
        env={env}
        project={params.project}
        canRestore={perms.can('UPDATE_FEATURE_STATE') || perms.can('MANAGE_SEGMENT_OVERRIDES')}
        onRestored={changed}
      />
      <SettingsCard feature={feature} project={params.project} canEdit={perms.can('CREATE_FEATURE', 'project')} onSaved={data.reload} />
      <DangerZone
        feature={feature}
        project={params.project}
        canDelete={perms.can('DELETE_FEATURE', 'project')}
        canEdit={perms.can('CREATE_FEATURE', 'project')}
        onArchived={data.reload}
        onDeleted={() => navigate(base)}
      />
    </>
  );
}

/** Changes when the saved state does, so the form starts again from what was saved. */
const stateKey = (s) => JSON.stringify([s.enabled, s.feature_state_value, s.multivariate_feature_state_values]);

/** Allocation of each option in this state: the state's own, else the option's default. */
function allocationsOf(feature, state) {
  const own = new Map((state.multivariate_feature_state_values || []).map((a) => [a.multivariate_feature_option, a.percentage_allocation]));
  return Object.fromEntries(feature.multivariate_options.map((o) => [o.id, String(own.get(o.id) ?? o.default_percentage_allocation)]));
}

export function allocationProblem(values) {
  const nums = Object.values(values).map(Number);
  if (nums.some((n) => !Number.isFinite(n) || n < 0 || n > 100)) return 'Each allocation is a percentage from 0 to 100.';
  const total = nums.reduce((a, b) => a + b, 0);
  if (total > 100 + 1e-9) return `The allocations add up to ${+total.toFixed(4)}%: they must add up to at most 100%.`;
  return null;
}

/** The fields of a state update that differ from `state` (a change request sets only those). */
function changedFields(state, body) {
  const out = {};
  if (body.enabled !== state.enabled) out.enabled = body.enabled;
  if (JSON.stringify(body.feature_state_value ?? null) !== JSON.stringify(state.feature_state_value ?? null)) {
    out.feature_state_value = body.feature_state_value;
  }
  if (body.multivariate_feature_state_values) {
    const was = new Map((state.multivariate_feature_state_values || []).map((a) => [a.multivariate_feature_option, a.percentage_allocation]));
    if (body.multivariate_feature_state_values.some((a) => was.get(a.multivariate_feature_option) !== a.percentage_allocation)) {
      out.multivariate_feature_state_values = body.multivariate_feature_state_values;
    }
  }
  return out;
}

/** A change request's field errors (`feature_states[0].enabled`) as the form's own fields. */
function requestFields(err) {
  const out = { ...err.fields };
  for (const [k, v] of Object.entries(err.fields)) {
    const m = /^feature_states\[0\]\.(\w+)/.exec(k);
    if (m) out[m[1]] = v;
  }
  return out;
}

function StateCard({ feature, state, env, project, viaRequests, canEdit, onSaved }) {
  const [enabled, setEnabled] = useState(state.enabled);
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [value, setValue] = useState(valueState(state.feature_state_value));
  const [alloc, setAlloc] = useState(allocationsOf(feature, state));
  const [later, setLater] = useState(false);
  const [when, setWhen] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const problem = feature.multivariate_options.length ? allocationProblem(alloc) : null;
  const whenProblem = later ? scheduleProblem(when) : null;
  const total = Object.values(alloc).reduce((a, b) => a + (Number(b) || 0), 0);
  const save = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error || problem || whenProblem) return;
    setBusy(true);
    setError(null);
    try {
      const body = { enabled, feature_state_value: v.value };
      if (later) body.live_from = new Date(when).toISOString();
      if (feature.multivariate_options.length) {
        body.multivariate_feature_state_values = feature.multivariate_options.map((o) => ({
          multivariate_feature_option: o.id,
          percentage_allocation: Number(alloc[o.id]),
        }));
      }
      if (viaRequests) {
        const { live_from: liveFrom, ...update } = body;
        const fields = changedFields(state, update);
        if (Object.keys(fields).length === 0) {
          setError({ message: `Nothing to request: this is already the state of ${feature.name} in ${env.name}.`, fields: {} });
          return;
        }
        const cr = await post(`/environments/${env.api_key}/create-change-request/`, {
          title: title.trim(),
          description: description.trim() || null,
          feature_states: [{ feature: feature.id, ...fields }],
          ...(liveFrom ? { live_from: liveFrom } : {}),
        });
        toast(`Change request “${cr.title}” opened: it takes effect once approved and committed`);
        navigate(`/projects/${project}/environments/${env.api_key}/change-requests/${cr.id}`);
        return;
      }
      await patch(`/environments/${env.api_key}/featurestates/${state.id}/`, body);
      toast(later ? `Change of ${feature.name} in ${env.name} scheduled for ${dateTime(body.live_from)}` : `${feature.name} saved in ${env.name}`);
      onSaved();
    } catch (err) {
      setError(viaRequests && err.fields ? Object.assign(err, { fields: requestFields(err) }) : err);
    } finally {
      setBusy(false);
    }
  };
  const own = ['feature_state_value', 'multivariate_feature_state_values', 'live_from', 'title', 'description'];
  return (
    <form class="card form" onSubmit={save}>
      <h2>In {env.name}</h2>
      {viaRequests && (
        <p class="notice" id="via-requests">
          {env.name} takes changes through change requests: a change made here is requested, and takes effect once it has{' '}
          {approvalsWord(env.minimum_change_request_approvals)} and is committed.
          {!canEdit && ' Requesting one needs the “Create change request” permission here.'}
        </p>
      )}
      <Alert error={error && !own.some((k) => error.fields?.[k]) ? error : null} />
      <div class="row">
        <Switch label={feature.name} checked={enabled} onChange={setEnabled} disabled={!canEdit} />
        <span class="muted">{enabled ? 'Served as enabled' : 'Served as disabled'}</span>
      </div>
      <ValueEditor label="Value" state={value} onChange={setValue} error={error?.fields.feature_state_value} disabled={!canEdit} />
      {feature.multivariate_options.length > 0 && (
        <fieldset class="allocations">
          <legend>Variation allocations in {env.name}</legend>
          <p class="hint">Identities are split by a stable hash of their identifier. Those outside every variation get the value above (control).</p>
          {feature.multivariate_options.map((o) => (
            <TextField
              key={o.id}
              label={`% for ${o.key ? `${o.key} (${showValue(o.value)})` : showValue(o.value)}`}
              type="number"
              min="0"
              max="100"
              step="any"
              value={alloc[o.id]}
              onInput={(v) => setAlloc({ ...alloc, [o.id]: v })}
              disabled={!canEdit}
              class="narrow"
            />
          ))}
          <p class={problem ? 'field-error' : 'muted'} role={problem ? 'alert' : undefined}>
            {problem || `Total ${+total.toFixed(4)}% · control ${+(100 - total).toFixed(4)}%`}
          </p>
          {error?.fields.multivariate_feature_state_values && <p class="field-error">{error.fields.multivariate_feature_state_values}</p>}
        </fieldset>
      )}
      {canEdit && (
        <fieldset class="when">
          <legend>Take effect</legend>
          <div class="row">
            <label class="radio">
              <input type="radio" name="when" checked={!later} onChange={() => setLater(false)} /> {viaRequests ? 'As soon as it is committed' : 'Now'}
            </label>
            <label class="radio">
              <input type="radio" name="when" checked={later} onChange={() => setLater(true)} /> Later, at a set time
            </label>
          </div>
          {later && (
            <TextField
              label="Date and time"
              type="datetime-local"
              value={when}
              onInput={setWhen}
              error={whenProblem || error?.fields.live_from}
              hint={`Your local time (${Intl.DateTimeFormat().resolvedOptions().timeZone}). ${viaRequests ? 'Once the request is committed, the change waits for this time.' : 'Until then nothing changes; it is listed under Scheduled changes.'}`}
              class="when-at"
            />
          )}
        </fieldset>
      )}
      {canEdit && viaRequests && (
        <fieldset>
          <legend>The change request</legend>
          <TextField
            label="Title"
            value={title}
            onInput={setTitle}
            error={error?.fields.title}
            hint="What approvers see first, e.g. “Turn on gift cards for the launch”."
            maxLength={500}
            required
          />
          <TextArea label="Description (optional)" value={description} onInput={setDescription} error={error?.fields.description} rows={2} />
        </fieldset>
      )}
      {canEdit && (
        <div class="form-actions">
          <Button
            kind="primary"
            type="submit"
            busy={busy}
            disabled={busy || !!problem || (later && !!whenProblem) || (viaRequests && !title.trim())}
          >
            {viaRequests ? 'Request this change' : later ? 'Schedule change' : `Save ${env.name} state`}
          </Button>
        </div>
      )}
    </form>
  );
}

/** Why a chosen time cannot be scheduled, or null. */
function scheduleProblem(when) {
  if (!when) return 'Choose the date and time the change takes effect.';
  const t = new Date(when).getTime();
  if (!Number.isFinite(t)) return 'Enter a date and time.';
  if (t <= Date.now()) return 'Choose a time in the future.';
  return null;
}

/** This feature's changes waiting for their time in this environment. */
function PendingChanges({ feature, env, project, canCancel }) {
  const data = useLoad(() => all(`/environments/${env.api_key}/scheduled-changes/?state=pending`), [env.api_key, feature.id]);
  const [tick, setTick] = useState(0);
  if (!data.data) return data.error ? <Alert error={data.error} /> : null;
  const mine = data.data.filter((c) => c.feature_states.some((s) => s.feature === feature.id));
  if (mine.length === 0) return null;
  return (
    <section class="card" aria-labelledby="pending-title">
      <h2 id="pending-title">Scheduled in {env.name}</h2>
      <ScheduledTable key={tick} changes={mine} env={env} project={project} canCancel={canCancel} onCancelled={() => { setTick(tick + 1); data.reload(); }} />
    </section>
  );
}

function Variations({ feature, project, canEdit, onSaved }) {
  const [adding, setAdding] = useState(false);
  const [value, setValue] = useState({ kind: 'text', text: '' });
  const [key, setKey] = useState('');
  const [pct, setPct] = useState('0');
  const [error, setError] = useState(null);
  const others = feature.multivariate_options.reduce((a, o) => a + o.default_percentage_allocation, 0);
  const problem = adding ? allocationProblem({ ...Object.fromEntries(feature.multivariate_options.map((o) => [o.id, o.default_percentage_allocation])), new: pct }) : null;
  const add = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error || problem) return;
    setError(null);
    try {
      await post(`/projects/${project}/features/${feature.id}/mv-options/`, {
        value: v.value,
        key: key.trim() || null,
        default_percentage_allocation: Number(pct),
      });
      toast('Variation added');
      setAdding(false);
      setValue({ kind: 'text', text: '' });
      setKey('');
      setPct('0');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (o) => {
    try {
      await del(`/projects/${project}/features/${feature.id}/mv-options/${o.id}/`);
      toast('Variation removed');
      onSaved();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <section class="card">
      <h2>Variations</h2>
      {feature.multivariate_options.length === 0 ? (
        <p class="muted">No variations: every identity gets the same value. Add variations to run an A/B test.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Value</th>
              <th scope="col" class="hide-phone">
                Key
              </th>
              <th scope="col">Default %</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {feature.multivariate_options.map((o) => (
              <tr key={o.id}>
                <td>
                  <code class="value">{showValue(o.value)}</code>
                </td>
                <td class="hide-phone">{o.key || <span class="muted">—</span>}</td>
                <td>{o.default_percentage_allocation}%</td>
                <td class="actions">
                  {canEdit && (
                    <Button kind="ghost" onClick={() => remove(o)} aria-label={`Remove variation ${o.key || showValue(o.value)}`}>
                      Remove
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canEdit &&
        (adding ? (
          <form class="form inset" onSubmit={add}>
            <Alert error={error && !error.fields.value && !error.fields.key && !error.fields.default_percentage_allocation ? error : null} />
            <ValueEditor label="Variation value" state={value} onChange={setValue} error={error?.fields.value} />
            <TextField label="Variation key (optional)" value={key} onInput={setKey} error={error?.fields.key} />
            <TextField
              label="Default allocation %"
              type="number"
              min="0"
              max="100"
              step="any"
              value={pct}
              onInput={setPct}
              error={problem || error?.fields.default_percentage_allocation}
              hint={`The other variations take ${+others.toFixed(4)}% by default.`}
              class="narrow"
            />
            <div class="form-actions">
              <Button onClick={() => setAdding(false)}>Cancel</Button>
              <Button kind="primary" type="submit" disabled={!!problem}>
                Add variation
              </Button>
            </div>
          </form>
        ) : (
          <Button onClick={() => setAdding(true)}>Add variation</Button>
        ))}
    </section>
  );
}

function SettingsCard({ feature, project, canEdit, onSaved }) {
  const [name, setName] = useState(feature.name);
  const [description, setDescription] = useState(feature.description || '');
  const known = useLoad(() => loadTags(project), [project]);
  const [tags, setTags] = useState(null);
  const shownTags = tags ?? (known.data ? tagLabels(feature.tags, known.data).join(', ') : '');
  const [serverOnly, setServerOnly] = useState(feature.is_server_key_only);
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await patch(`/projects/${project}/features/${feature.id}/`, {
        name: name.trim(),
        description: description || null,
        tags: await tagIdsFor(project, shownTags, known.data),
        is_server_key_only: serverOnly,
      });
      setTags(null);
      known.reload();
      toast('Feature settings saved');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>Settings</h2>
      <p class="hint">These apply to every environment of the project.</p>
      <Alert error={error && !['name', 'description', 'tags'].some((k) => error.fields[k]) ? error : null} />
      <TextField label="Name" value={name} onInput={setName} error={error?.fields.name} disabled={!canEdit} />
      <TextArea label="Description" value={description} onInput={setDescription} error={error?.fields.description} disabled={!canEdit} rows={2} />
      <TextField label="Tags" value={shownTags} onInput={setTags} error={error?.fields.tags || known.error?.message} hint="Comma-separated" disabled={!canEdit || !known.data} />
      <Checkbox label="Server-side only (hidden from client-side SDKs)" checked={serverOnly} onChange={setServerOnly} disabled={!canEdit} />
      {canEdit && (
        <div class="form-actions">
          <Button kind="primary" type="submit">
            Save settings
          </Button>
        </div>
      )}
    </form>
  );
}

function DangerZone({ feature, project, canDelete, canEdit, onArchived, onDeleted }) {
  const [confirming, setConfirming] = useState(false);
  const archive = async () => {
    try {
      await patch(`/projects/${project}/features/${feature.id}/`, { is_archived: !feature.is_archived });
      toast(feature.is_archived ? `${feature.name} restored` : `${feature.name} archived`);
      onArchived();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const remove = async () => {
    await del(`/projects/${project}/features/${feature.id}/`);
    toast(`${feature.name} deleted`);
    onDeleted();
  };
  if (!canDelete && !canEdit) return null;
  return (
    <section class="card danger">
      <h2>Archive or delete</h2>
      <p class="hint">Archiving hides the feature from the list and keeps serving it. Deleting removes it from every environment: SDKs stop receiving it.</p>
      <div class="row">
        {canEdit && <Button onClick={archive}>{feature.is_archived ? 'Restore from archive' : 'Archive feature'}</Button>}
        {canDelete && (
          <Button kind="danger" onClick={() => setConfirming(true)}>
            Delete feature
          </Button>
        )}
      </div>
      {confirming && (
        <ConfirmByName
          name={feature.name}
          what="feature"
          consequence="This removes the feature, its overrides and variations from every environment. It cannot be undone."
          onConfirm={remove}
          onClose={() => setConfirming(false)}
        />
      )}
    </section>
  );
}
