// A project's settings: name, hiding disabled flags, real-time updates, its limits, its
// environments (create, open), and deleting it.
import { useState } from 'preact/hooks';
import { del, patch, post } from '../lib/api.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import { Alert, Button, Checkbox, ConfirmByName, PageHeader, TextField, toast } from '../components/ui.jsx';
import { AccessCard } from '../components/AccessCard.jsx';

const LIMITS = [
  ['max_features', 'Features in the project'],
  ['max_segments', 'Segments in the project'],
  ['max_segment_overrides', 'Segment overrides per environment'],
  ['max_conditions_per_segment', 'Conditions per segment'],
  ['max_rule_depth', 'Rule nesting depth'],
  ['max_feature_value_bytes', 'Bytes in a flag value'],
  ['max_condition_value_bytes', 'Bytes in a condition value'],
  ['max_in_condition_value_bytes', 'Bytes in an “is one of” list'],
  ['max_trait_value_chars', 'Characters in a trait value'],
  ['max_traits_per_request', 'Traits in one SDK request'],
  ['max_traits_per_identity', 'Traits stored per identity'],
  ['max_identity_overrides', 'Identity overrides per environment'],
  ['max_document_bytes', 'Bytes in an environment document'],
];

export function ProjectSettings({ params }) {
  const place = usePlace();
  const project = place.project;
  const { can } = usePermissions(project.id);
  const admin = can('ADMIN', 'project');
  return (
    <>
      <PageHeader title="Project settings" subtitle={project.name} />
      <General project={project} canEdit={admin} onSaved={place.reloadPlace} />
      <Environments place={place} canCreate={can('CREATE_ENVIRONMENT', 'project')} />
      <AccessCard scope={`/projects/${project.id}`} kind="projects" org={project.organisation} title="Who has access to this project" />
      <Limits project={project} canEdit={admin} onSaved={place.reloadPlace} />
      {admin && <DeleteProject project={project} onDeleted={() => { place.reloadPlace(); navigate('/projects'); }} />}
    </>
  );
}

function General({ project, canEdit, onSaved }) {
  const [name, setName] = useState(project.name);
  const [hide, setHide] = useState(project.hide_disabled_flags);
  const [realtime, setRealtime] = useState(project.enable_realtime_updates);
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await patch(`/projects/${project.id}/`, { name: name.trim(), hide_disabled_flags: hide, enable_realtime_updates: realtime });
      toast('Project saved');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>General</h2>
      <Alert error={error && !error.fields.name ? error : null} />
      <TextField label="Project name" value={name} onInput={setName} error={error?.fields.name} disabled={!canEdit} />
      <Checkbox label="Hide disabled flags from SDKs" hint="Environments can override this." checked={hide} onChange={setHide} disabled={!canEdit} />
      <Checkbox label="Real-time updates" hint="SDKs subscribed to the stream hear about changes at once." checked={realtime} onChange={setRealtime} disabled={!canEdit} />
      {canEdit && (
        <div class="form-actions">
          <Button kind="primary" type="submit">
            Save project
          </Button>
        </div>
      )}
    </form>
  );
}

function Environments({ place, canCreate }) {
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const env = await post('/environments/', { name: name.trim(), project: place.project.id });
      toast(`Environment ${env.name} created`);
      setName('');
      place.reloadPlace();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="card">
      <h2>Environments</h2>
      <p class="hint">Each environment has its own flag states, overrides and SDK keys.</p>
      <ul class="link-list">
        {place.environments.map((e) => (
          <li key={e.id}>
            <Link href={`/projects/${place.project.id}/environments/${e.api_key}/settings`}>{e.name}</Link>
            <code class="muted small">{e.api_key}</code>
          </li>
        ))}
      </ul>
      {canCreate && (
        <form class="form inline-form" onSubmit={create}>
          <Alert error={error && !error.fields.name ? error : null} />
          <TextField label="New environment name" value={name} onInput={setName} error={error?.fields.name} placeholder="Staging" />
          <Button kind="primary" type="submit" disabled={!name.trim()}>
            Create environment
          </Button>
        </form>
      )}
    </section>
  );
}

function Limits({ project, canEdit, onSaved }) {
  const [values, setValues] = useState(Object.fromEntries(LIMITS.map(([k]) => [k, String(project.limits[k])])));
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const limits = {};
    for (const [k] of LIMITS) {
      if (Number(values[k]) !== project.limits[k]) limits[k] = Number(values[k]);
    }
    try {
      await patch(`/projects/${project.id}/`, { limits });
      toast('Limits saved');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>Limits</h2>
      <p class="hint">Changes that would pass a limit are refused, so no environment document grows beyond what workers and SDKs handle well.</p>
      <Alert error={error && !Object.keys(error.fields).some((k) => k.startsWith('limits')) ? error : null} />
      <div class="grid-2">
        {LIMITS.map(([k, label]) => (
          <TextField
            key={k}
            label={label}
            type="number"
            min="1"
            step="1"
            value={values[k]}
            onInput={(v) => setValues({ ...values, [k]: v })}
            error={error?.fields[`limits.${k}`]}
            disabled={!canEdit}
          />
        ))}
      </div>
      {canEdit && (
        <div class="form-actions">
          <Button kind="primary" type="submit">
            Save limits
          </Button>
        </div>
      )}
    </form>
  );
}

function DeleteProject({ project, onDeleted }) {
  const [confirming, setConfirming] = useState(false);
  const remove = async () => {
    await del(`/projects/${project.id}/`);
    toast(`Project ${project.name} deleted`);
    onDeleted();
  };
  return (
    <section class="card danger">
      <h2>Delete project</h2>
      <p class="hint">Deletes its environments, features, segments and identities. SDKs using its keys stop receiving flags.</p>
      <Button kind="danger" onClick={() => setConfirming(true)}>
        Delete project
      </Button>
      {confirming && <ConfirmByName name={project.name} what="project" onConfirm={remove} onClose={() => setConfirming(false)} />}
    </section>
  );
}
