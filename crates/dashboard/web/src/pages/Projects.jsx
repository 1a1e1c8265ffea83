// The start: where "/" leads, the list of projects, and creating the first organisation,
// project and environment.
import { useEffect, useState } from 'preact/hooks';
import { all, post } from '../lib/api.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePlace } from '../lib/session.jsx';
import { Alert, Button, Empty, Loading, PageHeader, TextField, toast, useLoad } from '../components/ui.jsx';

export function Home() {
  const place = usePlace();
  useEffect(() => {
    if (place.loading) return;
    const first = place.projects[0];
    if (first) navigate(`/projects/${first.id}/`, { replace: true });
    else navigate('/projects', { replace: true });
  }, [place.loading, place.projects.length]);
  return <Loading />;
}

/** `/projects/:id/`: the features of the project's first environment. */
export function ProjectHome({ params }) {
  const place = usePlace();
  useEffect(() => {
    if (place.loading || !place.project) return;
    const env = place.environments[0];
    if (env) navigate(`/projects/${params.project}/environments/${env.api_key}/features`, { replace: true });
    else navigate(`/projects/${params.project}/settings`, { replace: true });
  }, [place.loading, place.project, place.environments.length]);
  return <Loading />;
}

export function Projects() {
  const place = usePlace();
  const org = place.organisation;
  const envCounts = useLoad(async () => {
    const envs = await all('/environments/');
    const counts = {};
    for (const e of envs) counts[e.project] = (counts[e.project] || 0) + 1;
    return counts;
  }, [place.projects.length]);
  if (place.loading) return <Loading />;
  if (!org) return <CreateOrganisation onCreated={place.reloadPlace} />;
  return (
    <>
      <PageHeader title="Projects" subtitle={`Organisation ${org.name}`} />
      <section class="card">
        {place.projects.length === 0 ? (
          <Empty title="No projects yet">A project holds features and segments, shared by its environments (for example Development and Production).</Empty>
        ) : (
          <ul class="tile-list">
            {place.projects.map((p) => (
              <li key={p.id}>
                <Link href={`/projects/${p.id}/`} class="tile">
                  <span class="tile-title">{p.name}</span>
                  <span class="tile-meta">
                    {envCounts.data?.[p.id] ?? 0} environment{envCounts.data?.[p.id] === 1 ? '' : 's'}
                  </span>
                </Link>
              </li>
            ))}
          </ul>
        )}
      </section>
      <CreateProject organisation={org} onCreated={place.reloadPlace} />
    </>
  );
}

function CreateOrganisation({ onCreated }) {
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await post('/organisations/', { name });
      toast(`Organisation ${name} created`);
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <PageHeader title="Welcome to Flagstone" subtitle="Start by naming your organisation: the company or team that owns the flags." />
      <form class="card form" onSubmit={submit}>
        <Alert error={error && !error.fields.name ? error : null} />
        <TextField label="Organisation name" value={name} onInput={setName} error={error?.fields.name} placeholder="Acme Inc." />
        <Button kind="primary" type="submit">
          Create organisation
        </Button>
      </form>
    </>
  );
}

function CreateProject({ organisation, onCreated }) {
  const [name, setName] = useState('');
  const [envs, setEnvs] = useState('Development, Production');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const project = await post('/projects/', { name, organisation: organisation.id });
      for (const env of envs.split(',').map((s) => s.trim()).filter(Boolean)) {
        await post('/environments/', { name: env, project: project.id });
      }
      toast(`Project ${name} created`);
      onCreated();
      navigate(`/projects/${project.id}/`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit}>
      <h2>Create a project</h2>
      <Alert error={error && !error.fields.name ? error : null} />
      <TextField label="Project name" value={name} onInput={setName} error={error?.fields.name} placeholder="Web shop" />
      <TextField
        label="Environments"
        value={envs}
        onInput={setEnvs}
        hint="Comma-separated. Each environment has its own flag states and SDK key."
      />
      <Button kind="primary" type="submit" busy={busy} disabled={busy || !name.trim()}>
        Create project
      </Button>
    </form>
  );
}
