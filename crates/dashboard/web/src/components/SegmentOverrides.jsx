// A feature's segment overrides in one environment, in priority order (first match wins).
// Reorder with the Move up/down buttons or by dragging a row; the new order is saved at once.
import { useState } from 'preact/hooks';
import { all, del, patch, post } from '../lib/api.js';
import { showValue } from '../lib/format.js';
import { Link } from '../lib/router.jsx';
import { Alert, Button, Checkbox, SelectField, Switch, toast, useLoad } from './ui.jsx';
import { ValueEditor, readValue, valueState } from './ValueEditor.jsx';

export function SegmentOverrides({ feature, env, project, canEdit }) {
  const data = useLoad(async () => {
    const [overrides, segments] = await Promise.all([
      all(`/environments/${env.api_key}/segment-overrides/?feature=${feature.id}`),
      all(`/projects/${project}/segments/`),
    ]);
    overrides.sort((a, b) => a.priority - b.priority);
    return { overrides, segments };
  }, [feature.id, env.api_key]);
  const [dragging, setDragging] = useState(null);
  if (!data.data) return <section class="card"><h2>Segment overrides</h2><Alert error={data.error} /></section>;
  const { overrides, segments } = data.data;
  const nameOf = (id) => segments.find((s) => s.id === id)?.name ?? `segment ${id}`;

  const reorder = async (from, to) => {
    if (to < 0 || to >= overrides.length || from === to) return;
    const next = overrides.slice();
    const [moved] = next.splice(from, 1);
    next.splice(to, 0, moved);
    data.setData({ ...data.data, overrides: next });
    try {
      await post('/features/feature-segments/update-priorities/', next.map((o, i) => ({ id: o.id, priority: i })));
      toast(`${nameOf(moved.segment)} is now priority ${to + 1}`);
      data.reload();
    } catch (err) {
      toast(`Order not saved: ${err.message}`, 'error');
      data.reload();
    }
  };

  return (
    <section class="card">
      <h2>Segment overrides in {env.name}</h2>
      <p class="hint">Identities in a segment get that segment’s state instead of the default. When an identity is in several, the first in this list wins.</p>
      {overrides.length === 0 ? (
        <p class="muted">No segment overrides for this feature in {env.name}.</p>
      ) : (
        <ol class="override-list" aria-label="Segment overrides, highest priority first">
          {overrides.map((o, i) => (
            <li
              key={o.id}
              class={`override ${dragging === i ? 'dragging' : ''}`}
              draggable={canEdit}
              onDragStart={(e) => {
                setDragging(i);
                e.dataTransfer.effectAllowed = 'move';
                e.dataTransfer.setData('text/plain', String(i));
              }}
              onDragEnd={() => setDragging(null)}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => {
                e.preventDefault();
                const from = Number(e.dataTransfer.getData('text/plain'));
                setDragging(null);
                reorder(from, i);
              }}
            >
              <OverrideRow
                o={o}
                index={i}
                count={overrides.length}
                name={nameOf(o.segment)}
                project={project}
                env={env}
                canEdit={canEdit}
                onMove={reorder}
                onChanged={data.reload}
              />
            </li>
          ))}
        </ol>
      )}
      {canEdit && <AddOverride feature={feature} env={env} segments={segments.filter((s) => !overrides.some((o) => o.segment === s.id))} project={project} onAdded={data.reload} />}
    </section>
  );
}

function OverrideRow({ o, index, count, name, project, env, canEdit, onMove, onChanged }) {
  const [enabled, setEnabled] = useState(o.enabled);
  const [value, setValue] = useState(valueState(o.feature_state_value));
  const [error, setError] = useState(null);
  const dirty = enabled !== o.enabled || readValue(value).value !== o.feature_state_value;
  const save = async () => {
    const v = readValue(value);
    if (v.error) return;
    setError(null);
    try {
      await patch(`/environments/${env.api_key}/segment-overrides/${o.id}/`, { enabled, feature_state_value: v.value });
      toast(`Override for ${name} saved`);
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async () => {
    try {
      await del(`/environments/${env.api_key}/segment-overrides/${o.id}/`);
      toast(`Override for ${name} removed`);
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="override-body">
      <div class="override-head">
        {canEdit && (
          <span class="drag-handle" aria-hidden="true" title="Drag to reorder">
            ⋮⋮
          </span>
        )}
        <span class="priority" title="Priority">
          {index + 1}
        </span>
        <Link class="override-name" href={`/projects/${project}/segments/${o.segment}`}>
          {name}
        </Link>
        <Switch label={`${name} override`} checked={enabled} onChange={setEnabled} disabled={!canEdit} />
        {canEdit && (
          <span class="override-actions">
            <Button kind="ghost" onClick={() => onMove(index, index - 1)} disabled={index === 0} aria-label={`Move ${name} up`}>
              ↑
            </Button>
            <Button kind="ghost" onClick={() => onMove(index, index + 1)} disabled={index === count - 1} aria-label={`Move ${name} down`}>
              ↓
            </Button>
          </span>
        )}
      </div>
      <Alert error={error && !error.fields.feature_state_value ? error : null} />
      <div class="override-value">
        {canEdit ? (
          <ValueEditor label={`Value for ${name}`} state={value} onChange={setValue} error={error?.fields.feature_state_value} />
        ) : (
          <code class="value">{showValue(o.feature_state_value)}</code>
        )}
        {canEdit && (
          <div class="row">
            <Button kind="primary" onClick={save} disabled={!dirty}>
              Save override
            </Button>
            <Button kind="ghost" onClick={remove} aria-label={`Remove override for ${name}`}>
              Remove
            </Button>
          </div>
        )}
      </div>
    </div>
  );
}

function AddOverride({ feature, env, segments, project, onAdded }) {
  const [segment, setSegment] = useState('');
  const [enabled, setEnabled] = useState(true);
  const [value, setValue] = useState({ kind: 'none', text: '' });
  const [error, setError] = useState(null);
  if (segments.length === 0) {
    return (
      <p class="muted">
        Every segment already has an override here. <Link href={`/projects/${project}/segments/new`}>Create a segment</Link> to target other identities.
      </p>
    );
  }
  const submit = async (e) => {
    e.preventDefault();
    const v = readValue(value);
    if (v.error) return;
    setError(null);
    try {
      await post(`/environments/${env.api_key}/features/${feature.id}/create-segment-override/`, {
        segment: Number(segment),
        enabled,
        feature_state_value: v.value,
      });
      toast('Segment override added');
      setSegment('');
      onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="form inset" onSubmit={submit}>
      <h3>Add a segment override</h3>
      <Alert error={error && !error.fields.segment && !error.fields.feature_state_value ? error : null} />
      <SelectField
        label="Segment"
        value={segment}
        onChange={setSegment}
        error={error?.fields.segment}
        options={[{ value: '', label: 'Choose a segment…' }, ...segments.map((s) => ({ value: String(s.id), label: s.name }))]}
      />
      <Checkbox label="Enabled for this segment" checked={enabled} onChange={setEnabled} />
      <ValueEditor label="Value for this segment" state={value} onChange={setValue} error={error?.fields.feature_state_value} />
      <div class="form-actions">
        <Button kind="primary" type="submit" disabled={!segment}>
          Add override
        </Button>
      </div>
    </form>
  );
}
