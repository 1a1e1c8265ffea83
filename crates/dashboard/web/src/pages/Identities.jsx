// Identities of an environment: search by identifier; one identity's flags and why it gets
// them (the engine's explanation from the API), its overrides and its traits.
import { useEffect, useState } from 'preact/hooks';
import { all, del, get, post, query } from '../lib/api.js';
import { ago, showValue } from '../lib/format.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import {
  Alert, Button, Checkbox, Dialog, Empty, Loading, PageHeader, Pager, SelectField, TextField, toast, useLoad,
} from '../components/ui.jsx';
import { ValueEditor, readValue } from '../components/ValueEditor.jsx';

const PAGE_SIZE = 50;

export function Identities({ params }) {
  const env = usePlace().environment;
  const { can } = usePermissions(params.project, env.api_key);
  const [q, setQ] = useState('');
  const [typed, setTyped] = useState('');
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  useEffect(() => {
    const t = setTimeout(() => {
      setQ(typed);
      setPage(1);
    }, 200);
    return () => clearTimeout(t);
  }, [typed]);
  const list = useLoad(() => get(`/environments/${env.api_key}/identities/${query({ q, page, page_size: PAGE_SIZE })}`), [env.api_key, q, page]);
  const base = `/projects/${params.project}/environments/${env.api_key}/identities`;
  return (
    <>
      <PageHeader
        title="Identities"
        subtitle={`Users your SDKs identified in ${env.name}, with their traits. Open one to see which flags it gets and why.`}
        actions={can('MANAGE_IDENTITIES') && <Button kind="primary" onClick={() => setCreating(true)}>Create identity</Button>}
      />
      <div class="toolbar" role="search">
        <TextField label="Search by identifier" type="search" value={typed} onInput={setTyped} placeholder="Starts with…" class="grow" />
      </div>
      <Alert error={list.error} />
      {!list.data ? (
        <Loading />
      ) : list.data.count === 0 ? (
        <Empty title={q ? 'No identity starts with that' : 'No identities yet'}>
          {q ? 'Identifiers are matched from the start, case-sensitively.' : 'Identities appear when an SDK identifies a user, or create one here.'}
        </Empty>
      ) : (
        <>
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Identifier</th>
                <th scope="col" class="hide-phone">
                  First seen
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.results.map((i) => (
                <tr key={i.id}>
                  <td>
                    <Link class="feature-name" href={`${base}/${i.id}`}>
                      {i.identifier}
                    </Link>
                  </td>
                  <td class="hide-phone">{ago(i.created_date)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="identities" />
        </>
      )}
      {creating && <CreateIdentity env={env} onClose={() => setCreating(false)} onCreated={(i) => navigate(`${base}/${i.id}`)} />}
    </>
  );
}

function CreateIdentity({ env, onClose, onCreated }) {
  const [identifier, setIdentifier] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      onCreated(await post(`/environments/${env.api_key}/identities/`, { identifier }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title="Create identity" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <Alert error={error && !error.fields.identifier ? error : null} />
        <TextField label="Identifier" value={identifier} onInput={setIdentifier} error={error?.fields.identifier} hint="As your app identifies the user, e.g. a user id or email." />
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" disabled={!identifier}>
            Create identity
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

const DECISIONS = {
  environment_default: 'Environment default',
  segment_override: 'Segment override',
  split: 'Percentage split',
  identity_override: 'Identity override',
};

function why(f) {
  if (f.decision === 'segment_override') return `In segment “${f.segment?.name}”, whose override comes first`;
  if (f.decision === 'split') return f.variant === 'control' ? 'Outside every variation: control value' : `Variation ${f.variant ?? ''} by hash bucket`;
  if (f.decision === 'identity_override') return 'Overridden for this identity';
  return 'No segment or identity override applies';
}

export function IdentityPage({ params }) {
  const env = usePlace().environment;
  const { can } = usePermissions(params.project, env.api_key);
  const canManage = can('MANAGE_IDENTITIES');
  const path = `/environments/${env.api_key}/identities/${params.identity}`;
  const identity = useLoad(() => get(`${path}/`), [path]);
  const evaluation = useLoad(() => get(`${path}/evaluation/`), [path]);
  const overrides = useLoad(() => all(`${path}/featurestates/`), [path]);
  const traits = useLoad(() => all(`${path}/traits/`), [path]);
  const reload = () => {
    evaluation.reload();
    overrides.reload();
    traits.reload();
  };
  const [confirming, setConfirming] = useState(false);
  if (identity.error) return <Alert error={identity.error} />;
  if (!identity.data) return <Loading />;
  const ev = evaluation.data;
  const list = `/projects/${params.project}/environments/${env.api_key}/identities`;
  const remove = async () => {
    try {
      await del(`${path}/`);
      toast(`Identity ${identity.data.identifier} deleted`);
      navigate(list);
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <>
      <p class="crumbs">
        <Link href={list}>← Identities of {env.name}</Link>
      </p>
      <PageHeader
        title={identity.data.identifier}
        subtitle={`Identity in ${env.name}`}
        actions={canManage && <Button kind="danger" onClick={() => setConfirming(true)}>Delete identity</Button>}
      />
      <section class="card">
        <h2>Flags this identity gets</h2>
        <Alert error={evaluation.error} />
        {ev && (
          <>
            <p class="hint">
              As served now (published revision {ev.revision}
              {ev.current_revision > ev.revision ? `; revision ${ev.current_revision} is being published` : ''}).{' '}
              {ev.segments.length ? (
                <>
                  Member of:{' '}
                  {ev.segments.map((s) => (
                    <span class="chip chip-info" key={s.name}>
                      {s.name}
                    </span>
                  ))}
                </>
              ) : (
                'Member of no segment.'
              )}
            </p>
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Feature</th>
                  <th scope="col" class="hide-phone">
                    Enabled
                  </th>
                  <th scope="col" class="hide-phone">
                    Value
                  </th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {ev.flags.map((f) => (
                  <tr key={f.name}>
                    <td class="mono">
                      {f.name}
                      <div class="show-phone-block">
                        <span class={`badge ${f.enabled ? 'badge-on' : 'badge-off'}`}>{f.enabled ? 'On' : 'Off'}</span>{' '}
                        {showValue(f.value) !== '' && <code class="value">{showValue(f.value)}</code>}
                      </div>
                    </td>
                    <td class="hide-phone">
                      <span class={`badge ${f.enabled ? 'badge-on' : 'badge-off'}`}>{f.enabled ? 'On' : 'Off'}</span>
                    </td>
                    <td class="hide-phone">
                      <code class="value">{showValue(f.value)}</code>
                    </td>
                    <td>
                      <strong>{DECISIONS[f.decision]}</strong>
                      <div class="muted small">{why(f)}</div>
                      {f.hidden && <div class="muted small">Not sent: this environment hides disabled flags.</div>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
      <IdentityOverrides path={path} flags={ev?.flags || []} overrides={overrides} canManage={canManage} onChanged={reload} />
      <Traits path={path} traits={traits} canManage={canManage} onChanged={reload} />
      {confirming && (
        <Dialog title={`Delete ${identity.data.identifier}?`} onClose={() => setConfirming(false)}>
          <p>Its traits and overrides are deleted with it. An SDK that identifies it again creates it anew.</p>
          <div class="form-actions">
            <Button onClick={() => setConfirming(false)}>Cancel</Button>
            <Button kind="danger" onClick={remove}>
              Delete identity
            </Button>
          </div>
        </Dialog>
      )}
    </>
  );
}

function IdentityOverrides({ path, flags, overrides, canManage, onChanged }) {
  const [feature, setFeature] = useState('');
  const [enabled, setEnabled] = useState(true);
  const [value, setValue] = useState({ kind: 'none', text: '' });
  const [error, setError] = useState(null);
  const nameOf = (id) => flags.find((f) => f.feature === id)?.name ?? `feature ${id}`;
  const taken = new Set((overrides.data || []).map((o) => o.feature));
  const add = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error) return;
    setError(null);
    try {
      await post(`${path}/featurestates/`, { feature: Number(feature), enabled, feature_state_value: v.value });
      toast(`Override for ${nameOf(Number(feature))} added`);
      setFeature('');
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (o) => {
    try {
      await del(`${path}/featurestates/${o.id}/`);
      toast(`Override for ${nameOf(o.feature)} removed`);
      onChanged();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <section class="card">
      <h2>Identity overrides</h2>
      <p class="hint">An identity override beats every segment override and split, for this identity only.</p>
      <Alert error={overrides.error} />
      {(overrides.data || []).length === 0 ? (
        <p class="muted">No overrides for this identity.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Feature</th>
              <th scope="col">Enabled</th>
              <th scope="col">Value</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {overrides.data.map((o) => (
              <tr key={o.id}>
                <td class="mono">{nameOf(o.feature)}</td>
                <td>{o.enabled ? 'On' : 'Off'}</td>
                <td>
                  <code class="value">{showValue(o.feature_state_value)}</code>
                </td>
                <td class="actions">
                  {canManage && (
                    <Button kind="ghost" onClick={() => remove(o)} aria-label={`Remove override of ${nameOf(o.feature)}`}>
                      Remove
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canManage && (
        <form class="form inset" onSubmit={add}>
          <h3>Add an override</h3>
          <Alert error={error && !error.fields.feature && !error.fields.feature_state_value ? error : null} />
          <SelectField
            label="Feature"
            value={feature}
            onChange={setFeature}
            error={error?.fields.feature}
            options={[
              { value: '', label: 'Choose a feature…' },
              ...flags.filter((f) => f.feature !== null && !taken.has(f.feature)).map((f) => ({ value: String(f.feature), label: f.name })),
            ]}
          />
          <Checkbox label="Enabled for this identity" checked={enabled} onChange={setEnabled} />
          <ValueEditor label="Value for this identity" state={value} onChange={setValue} error={error?.fields.feature_state_value} />
          <div class="form-actions">
            <Button kind="primary" type="submit" disabled={!feature}>
              Add override
            </Button>
          </div>
        </form>
      )}
    </section>
  );
}

function Traits({ path, traits, canManage, onChanged }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState({ kind: 'text', text: '' });
  const [error, setError] = useState(null);
  const add = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error) return;
    setError(null);
    try {
      await post(`${path}/traits/`, { trait_key: key, trait_value: v.value });
      toast(`Trait ${key} set`);
      setKey('');
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (t) => {
    try {
      await del(`${path}/traits/${encodeURIComponent(t.trait_key)}/`);
      toast(`Trait ${t.trait_key} deleted`);
      onChanged();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <section class="card">
      <h2>Traits</h2>
      <Alert error={traits.error} />
      {(traits.data || []).length === 0 ? (
        <p class="muted">No traits. Segments match identities on their traits.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Trait</th>
              <th scope="col">Value</th>
              <th scope="col" class="hide-phone">
                Updated
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {traits.data.map((t) => (
              <tr key={t.trait_key}>
                <td class="mono">{t.trait_key}</td>
                <td>
                  <code class="value">{showValue(t.trait_value)}</code>
                </td>
                <td class="hide-phone">{ago(t.updated_at)}</td>
                <td class="actions">
                  {canManage && (
                    <Button kind="ghost" onClick={() => remove(t)} aria-label={`Delete trait ${t.trait_key}`}>
                      Delete
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canManage && (
        <form class="form inset" onSubmit={add}>
          <h3>Set a trait</h3>
          <Alert error={error && !error.fields.trait_key && !error.fields.trait_value ? error : null} />
          <TextField label="Trait key" value={key} onInput={setKey} error={error?.fields.trait_key} />
          <ValueEditor label="Trait value" state={value} onChange={setValue} error={error?.fields.trait_value} />
          <div class="form-actions">
            <Button kind="primary" type="submit" disabled={!key}>
              Set trait
            </Button>
          </div>
        </form>
      )}
    </section>
  );
}
