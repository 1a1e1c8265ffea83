// Segments of a project: the list (with search) and one segment's editor.
import { useState } from 'preact/hooks';
import { all, del, get, post, put } from '../lib/api.js';
import { ago } from '../lib/format.js';
import { Link, navigate } from '../lib/router.jsx';
import { usePermissions, usePlace } from '../lib/session.jsx';
import { Alert, Button, Dialog, Empty, Loading, PageHeader, TextArea, TextField, toast, useLoad } from '../components/ui.jsx';
import { RulesEditor, newRule, toApi } from '../components/RulesEditor.jsx';

function countConditions(rules) {
  return (rules || []).reduce((n, r) => n + (r.conditions || []).length + countConditions(r.rules), 0);
}

export function Segments({ params }) {
  const place = usePlace();
  const { can } = usePermissions(params.project);
  const [search, setSearch] = useState('');
  const list = useLoad(() => all(`/projects/${params.project}/segments/`), [params.project]);
  const shown = (list.data || []).filter((s) => s.name.toLowerCase().includes(search.toLowerCase()));
  const newHref = `/projects/${params.project}/segments/new`;
  return (
    <>
      <PageHeader
        title="Segments"
        subtitle={`Groups of identities in ${place.project?.name}, defined by rules on their traits. Override a feature for a segment on the feature's page.`}
        actions={
          can('MANAGE_SEGMENTS', 'project') && (
            <Button kind="primary" onClick={() => navigate(newHref)}>
              Create segment
            </Button>
          )
        }
      />
      <div class="toolbar" role="search">
        <TextField label="Search segments" type="search" value={search} onInput={setSearch} class="grow" placeholder="Name contains…" />
      </div>
      <Alert error={list.error} />
      {list.loading && !list.data ? (
        <Loading />
      ) : shown.length === 0 ? (
        search ? (
          <Empty title="No segments match" />
        ) : (
          <Empty title="No segments yet" action={<Button kind="primary" onClick={() => navigate(newHref)}>Create a segment</Button>}>
            For example “Beta testers”: identities whose trait plan is equal to beta.
          </Empty>
        )
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Segment</th>
              <th scope="col">Conditions</th>
              <th scope="col" class="hide-phone">
                Changed
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((s) => (
              <tr key={s.id}>
                <td>
                  <Link href={`/projects/${params.project}/segments/${s.id}`} class="feature-name">
                    {s.name}
                  </Link>
                  {s.description && <div class="muted small clamp">{s.description}</div>}
                </td>
                <td>{countConditions(s.rules)}</td>
                <td class="hide-phone">{ago(s.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export function SegmentPage({ params }) {
  const place = usePlace();
  const isNew = params.segment === 'new';
  const data = useLoad(
    () => (isNew ? Promise.resolve(null) : get(`/projects/${params.project}/segments/${params.segment}/`)),
    [params.segment],
  );
  if (data.error) return <Alert error={data.error} />;
  if (!isNew && !data.data) return <Loading />;
  return <SegmentForm key={params.segment} segment={data.data} project={place.project} />;
}

function SegmentForm({ segment, project }) {
  const { can } = usePermissions(project.id);
  const canEdit = can('MANAGE_SEGMENTS', 'project');
  const [name, setName] = useState(segment?.name ?? '');
  const [description, setDescription] = useState(segment?.description ?? '');
  const [rules, setRules] = useState(segment?.rules ?? [newRule('ALL')]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const listHref = `/projects/${project.id}/segments`;
  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const body = { name: name.trim(), description: description || null, rules: toApi(rules) };
    try {
      if (segment) {
        await put(`/projects/${project.id}/segments/${segment.id}/`, body);
        toast(`Segment ${body.name} saved`);
      } else {
        const created = await post(`/projects/${project.id}/segments/`, body);
        toast(`Segment ${created.name} created`);
        navigate(`/projects/${project.id}/segments/${created.id}`, { replace: true });
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    try {
      await del(`/projects/${project.id}/segments/${segment.id}/`);
      toast(`Segment ${segment.name} deleted`);
      navigate(listHref);
    } catch (err) {
      setError(err);
      setConfirming(false);
    }
  };
  const ruleFieldError = error && Object.keys(error.fields).some((k) => k.startsWith('rules'));
  return (
    <>
      <p class="crumbs">
        <Link href={listHref}>← Segments</Link>
      </p>
      <PageHeader title={segment ? segment.name : 'New segment'} subtitle="An identity is in the segment when every top-level rule matches." />
      <form class="card form" onSubmit={save} noValidate>
        <Alert error={error && !error.fields.name && !error.fields.description && !ruleFieldError ? error : null} />
        {ruleFieldError && <Alert error={{ message: 'Some rules need fixing: see the messages below.' }} />}
        <TextField label="Segment name" value={name} onInput={setName} error={error?.fields.name} disabled={!canEdit} required />
        <TextArea label="Description" value={description} onInput={setDescription} error={error?.fields.description} rows={2} disabled={!canEdit} />
        <h2>Rules</h2>
        <RulesEditor rules={rules} onChange={setRules} errors={error?.fields || {}} maxDepth={project.limits?.max_rule_depth ?? 3} disabled={!canEdit} />
        {canEdit && (
          <div class="form-actions">
            {segment && (
              <Button kind="danger" onClick={() => setConfirming(true)}>
                Delete segment
              </Button>
            )}
            <Button kind="primary" type="submit" busy={busy} disabled={busy}>
              {segment ? 'Save segment' : 'Create segment'}
            </Button>
          </div>
        )}
      </form>
      {confirming && (
        <Dialog title={`Delete ${segment.name}?`} onClose={() => setConfirming(false)}>
          <p>Its overrides in every environment are deleted with it.</p>
          <div class="form-actions">
            <Button onClick={() => setConfirming(false)}>Cancel</Button>
            <Button kind="danger" onClick={remove}>
              Delete segment
            </Button>
          </div>
        </Dialog>
      )}
    </>
  );
}
