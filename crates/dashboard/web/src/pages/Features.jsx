// The features of an environment: search, tag filter, a page of 50 at a time, and each flag's
// on/off switch (its accessible name is the feature's name). Creating a feature is a dialog.
import { useEffect, useState } from 'preact/hooks';
import { get, patch, post, query } from '../lib/api.js';
import { ago, dateTime, showValue } from '../lib/format.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import {
  Alert, Button, Checkbox, Dialog, Empty, Loading, PageHeader, Pager, SelectField, Switch, TextArea, TextField, toast, useLoad,
} from '../components/ui.jsx';
import { ValueEditor, readValue, valueState } from '../components/ValueEditor.jsx';
import { loadTags, tagIdsFor, tagLabels } from '../lib/tags.js';
import { approvalsWord, requiresRequests } from './ChangeRequests.jsx';

const PAGE_SIZE = 50;

function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value]);
  return v;
}

export function Features({ params }) {
  const place = usePlace();
  const env = place.environment;
  const project = place.project;
  const { can, loaded } = usePermissions(project?.id, env?.api_key);
  const [search, setSearch] = useState('');
  const [tag, setTag] = useState('');
  const [archived, setArchived] = useState(false);
  const [stale, setStale] = useState(false);
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState(null);
  const q = useDebounced(search, 200);
  useEffect(() => setPage(1), [q, tag, archived, stale, env?.id]);

  const tags = useLoad(() => loadTags(params.project), [params.project]);
  const list = useLoad(
    () =>
      get(
        `/projects/${params.project}/features/${query({
          environment: env.id,
          search: q,
          tags: tag,
          is_archived: archived ? 'true' : 'false',
          stale: stale ? 'true' : undefined,
          page,
          page_size: PAGE_SIZE,
        })}`,
      ),
    [params.project, env?.id, q, tag, archived, stale, page],
  );
  // An environment that requires approvals takes direct changes from its admins only; anyone
  // else requests them (from the feature's page), so the switches here are read-only for them.
  const viaRequests = requiresRequests(env) && loaded && !can('ADMIN');
  const canToggle = can('UPDATE_FEATURE_STATE') && !viaRequests;

  const toggle = async (feature, enabled) => {
    const state = feature.environment_feature_state;
    const set = (on) =>
      list.setData((d) => ({
        ...d,
        results: d.results.map((f) =>
          f.id === feature.id ? { ...f, environment_feature_state: { ...f.environment_feature_state, enabled: on } } : f,
        ),
      }));
    set(enabled);
    try {
      await patch(`/environments/${env.api_key}/featurestates/${state.id}/`, { enabled });
      toast(`${feature.name} is ${enabled ? 'on' : 'off'} in ${env.name}`);
    } catch (err) {
      set(!enabled);
      toast(`${feature.name} was not changed: ${err.message}`, 'error');
    }
  };

  return (
    <>
      <PageHeader
        title="Features"
        subtitle={`Flags in ${env.name}. Switching a flag here changes it for every SDK using this environment.`}
        actions={
          can('CREATE_FEATURE', 'project') && (
            <Button kind="primary" onClick={() => setCreating(true)}>
              Create feature
            </Button>
          )
        }
      />
      <div class="toolbar" role="search">
        <TextField label="Search features" type="search" value={search} onInput={setSearch} placeholder="Name contains…" class="grow" />
        <SelectField
          label="Tag"
          value={tag}
          onChange={setTag}
          options={[{ value: '', label: 'All tags' }, ...(tags.data || []).map((t) => ({ value: String(t.id), label: t.label }))]}
        />
        <Checkbox label="Show archived" checked={archived} onChange={setArchived} />
        <Checkbox label="Only stale (unused or unchanged for weeks)" checked={stale} onChange={setStale} />
      </div>
      {viaRequests ? (
        <p class="notice" id="no-toggle">
          Changes to {env.name} go through change requests: each needs {approvalsWord(env.minimum_change_request_approvals)} before it
          takes effect, so the switches here are read-only. Open a feature to request a change; see{' '}
          <Link href={`/projects/${params.project}/environments/${env.api_key}/change-requests`}>Change requests</Link>.
        </p>
      ) : !canToggle && (
        <p class="notice" id="no-toggle">
          You can view the flags of {env.name} but not change them: that needs the “Update feature state” permission here.
        </p>
      )}
      <Alert error={list.error} />
      {list.loading && !list.data ? (
        <Loading label="Loading features…" />
      ) : list.data && list.data.count === 0 ? (
        stale && !q && !tag ? (
          <Empty title="No stale features">Every feature was evaluated recently, or still changes. Nothing to clean up.</Empty>
        ) : q || tag || archived || stale ? (
          <Empty title="No features match">Try another search, tag or filter.</Empty>
        ) : (
          <Empty
            title="No features yet"
            action={
              <Button kind="primary" onClick={() => setCreating(true)}>
                Create your first feature
              </Button>
            }
          >
            A feature is a flag your code asks for by name: on or off, optionally with a value.
          </Empty>
        )
      ) : (
        list.data && (
          <>
            <table class="table features-table" aria-busy={list.loading ? 'true' : 'false'}>
              <thead>
                <tr>
                  <th scope="col">Feature</th>
                  <th scope="col" class="hide-phone">
                    Value
                  </th>
                  <th scope="col" class="hide-phone">
                    Last evaluated
                  </th>
                  <th scope="col" class="col-switch">
                    Enabled
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.results.map((f) => (
                  <FeatureRow key={f.id} f={f} tags={tags.data} env={env} params={params} canToggle={canToggle} onToggle={toggle} onEdit={setEditing} />
                ))}
              </tbody>
            </table>
            <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="features" />
          </>
        )
      )}
      {editing && (
        <EditValue
          feature={editing}
          env={env}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            list.reload();
          }}
        />
      )}
      {creating && (
        <CreateFeature
          project={project}
          knownTags={tags.data}
          onClose={() => setCreating(false)}
          onCreated={(f) => {
            setCreating(false);
            list.reload();
            tags.reload();
            navigate(`/projects/${params.project}/environments/${env.api_key}/features/${f.id}`);
          }}
        />
      )}
    </>
  );
}

function FeatureRow({ f, tags, env, params, canToggle, onToggle, onEdit }) {
  const state = f.environment_feature_state;
  const value = state ? showValue(state.feature_state_value) : '';
  const variations = f.multivariate_options.length;
  return (
    <tr>
      <td>
        <Link class="feature-name" href={`/projects/${params.project}/environments/${env.api_key}/features/${f.id}`}>
          {f.name}
        </Link>
        {f.is_archived && <span class="chip chip-muted">archived</span>}
        {tagLabels(f.tags, tags).map((t) => (
          <span class="chip" key={t}>
            {t}
          </span>
        ))}
        {f.stale && (
          <span class="chip chip-warn" title={staleWhy(f.stale)}>
            stale: {f.stale.reason === 'unused' ? 'unused' : 'fixed value'}
          </span>
        )}
        {f.description && <div class="muted small clamp">{f.description}</div>}
        {f.stale && <div class="muted small">{staleWhy(f.stale)}</div>}
      </td>
      <td class="hide-phone">
        {value !== '' && <code class="value">{value}</code>}
        {variations > 0 && <span class="chip chip-info">{variations} variation{variations > 1 ? 's' : ''}</span>}
        {state && canToggle && (
          <button type="button" class="link-btn" onClick={() => onEdit(f)} aria-label={`Edit value of ${f.name}`}>
            Edit
          </button>
        )}
      </td>
      <td class="hide-phone small" title={state?.last_evaluated_at ? dateTime(state.last_evaluated_at) : undefined}>
        {state?.last_evaluated_at ? ago(state.last_evaluated_at) : <span class="muted">never</span>}
      </td>
      <td class="col-switch">
        {state && (
          <Switch
            label={f.name}
            checked={state.enabled}
            disabled={!canToggle}
            describedBy={canToggle ? undefined : 'no-toggle'}
            onChange={(on) => onToggle(f, on)}
          />
        )}
      </td>
    </tr>
  );
}

/** Why the API calls a feature stale, in words. */
function staleWhy(s) {
  if (s.reason === 'unused') {
    return s.last_evaluated_at ? `No SDK asked for it since ${dateTime(s.last_evaluated_at)}.` : 'No SDK has ever asked for it.';
  }
  return `It has served the same value everywhere since ${dateTime(s.since)}: it can be replaced by a constant.`;
}

function CreateFeature({ project, knownTags, onClose, onCreated }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [tags, setTags] = useState('');
  const [enabled, setEnabled] = useState(false);
  const [value, setValue] = useState({ kind: 'none', text: '' });
  const [serverOnly, setServerOnly] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error) return;
    setBusy(true);
    setError(null);
    try {
      const f = await post(`/projects/${project.id}/features/`, {
        name: name.trim(),
        description: description || null,
        tags: await tagIdsFor(project.id, tags, knownTags),
        default_enabled: enabled,
        initial_value: v.value,
        is_server_key_only: serverOnly,
      });
      toast(`Feature ${f.name} created`);
      onCreated(f);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const known = ['name', 'description', 'tags', 'initial_value'];
  return (
    <Dialog title="Create feature" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <Alert error={error && !known.some((k) => error.fields[k]) ? error : null} />
        <TextField label="Name" value={name} onInput={setName} error={error?.fields.name} hint="What your code asks for, e.g. checkout_v2. Unique in the project." required />
        <TextArea label="Description" value={description} onInput={setDescription} error={error?.fields.description} rows={2} />
        <TextField label="Tags" value={tags} onInput={setTags} error={error?.fields.tags} hint="Comma-separated, e.g. checkout, experiment" />
        <Checkbox label="Enabled in every environment to start with" checked={enabled} onChange={setEnabled} />
        <ValueEditor label="Initial value" state={value} onChange={setValue} error={error?.fields.initial_value} />
        <Checkbox label="Server-side only (hidden from client-side SDKs)" checked={serverOnly} onChange={setServerOnly} />
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy} disabled={busy || !name.trim()}>
            Create feature
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

/** The value of one flag in this environment, edited without leaving the list. */
function EditValue({ feature, env, onClose, onSaved }) {
  const state = feature.environment_feature_state;
  const [value, setValue] = useState(valueState(state.feature_state_value));
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error) return;
    setError(null);
    try {
      await patch(`/environments/${env.api_key}/featurestates/${state.id}/`, { feature_state_value: v.value });
      toast(`Value of ${feature.name} saved in ${env.name}`);
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title={`Value of ${feature.name} in ${env.name}`} onClose={onClose}>
      <form class="form" onSubmit={save}>
        <Alert error={error && !error.fields.feature_state_value ? error : null} />
        <ValueEditor label="Value" state={value} onChange={setValue} error={error?.fields.feature_state_value} />
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit">
            Save value
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
