// Organisation pages: members and their roles, invitations, groups, organisation API keys.
// Built on the people endpoints (docs/permissions.md); a page a person may not use says so.
import { useState } from 'preact/hooks';
import { all, del, get, patch, post } from '../lib/api.js';
import { ago, dateTime } from '../lib/format.js';
import { usePlace, useSession } from '../lib/session.jsx';
import {
  Alert, Button, Checkbox, Dialog, Empty, Loading, PageHeader, SelectField, TextField, toast, useLoad,
} from '../components/ui.jsx';

const ROLES = [
  { value: 'USER', label: 'User' },
  { value: 'ADMIN', label: 'Administrator' },
];
const roleName = (r) => (r === 'ADMIN' ? 'Administrator' : 'User');
const personName = (u) => [u.first_name, u.last_name].filter(Boolean).join(' ') || u.email;

/** A list load whose 403 is a sentence, not a failure. */
function Refusal({ error, what }) {
  if (!error) return null;
  if (error.status === 403) return <Empty title={`Only organisation administrators can see ${what}.`}>{error.message}</Empty>;
  return <Alert error={error} />;
}

export function Members({ params }) {
  const org = usePlace().organisation;
  const { user } = useSession();
  const members = useLoad(() => all(`/organisations/${params.org}/users/`), [params.org]);
  const change = async (m, role) => {
    try {
      await post(`/organisations/${params.org}/users/${m.id}/update-role/`, { role });
      toast(`${personName(m)} is now ${roleName(role).toLowerCase()}`);
      members.reload();
    } catch (err) {
      toast(err.message, 'error');
      members.reload();
    }
  };
  const remove = async (m) => {
    try {
      await del(`/organisations/${params.org}/users/${m.id}/`);
      toast(`${personName(m)} removed from ${org?.name}`);
      members.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <>
      <PageHeader title="Members" subtitle={`People in ${org?.name ?? 'the organisation'}. Administrators manage members, invitations, keys and every project.`} />
      <Refusal error={members.error} what="members" />
      {!members.data && !members.error && <Loading />}
      {members.data && (
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Person</th>
              <th scope="col">Role</th>
              <th scope="col" class="hide-phone">
                Last signed in
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {members.data.map((m) => (
              <tr key={m.id}>
                <td>
                  <strong>{personName(m)}</strong>
                  <div class="muted small break">{m.email}</div>
                </td>
                <td>
                  <SelectField
                    label={`Role of ${personName(m)}`}
                    class="inline-label"
                    value={m.role}
                    onChange={(r) => change(m, r)}
                    options={ROLES}
                    disabled={m.id === user?.id}
                    hint={m.id === user?.id ? 'Yours: another administrator can change it.' : undefined}
                  />
                </td>
                <td class="hide-phone">{m.last_login_at ? ago(m.last_login_at) : 'never'}</td>
                <td class="actions">
                  {m.id !== user?.id && (
                    <Button kind="ghost" onClick={() => remove(m)} aria-label={`Remove ${m.email} from the organisation`}>
                      Remove
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export function Invites({ params }) {
  const org = usePlace().organisation;
  const invites = useLoad(() => all(`/organisations/${params.org}/invites/`), [params.org]);
  const groups = useLoad(() => all(`/organisations/${params.org}/groups/`).catch(() => []), [params.org]);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('USER');
  const [group, setGroup] = useState('');
  const [error, setError] = useState(null);
  const [links, setLinks] = useState(null);
  const invite = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const emails = email.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
      const created = await post(`/organisations/${params.org}/invite/`, {
        invites: emails.map((address) => ({ email: address, role, permission_groups: group ? [Number(group)] : [] })),
      });
      setEmail('');
      invites.reload();
      const unsent = created.filter((c) => c.join_url && !c.email_sent);
      if (unsent.length) setLinks(unsent);
      else toast(`Invitation sent to ${emails.join(', ')}`);
    } catch (err) {
      setError(err);
    }
  };
  const cancel = async (i) => {
    try {
      await del(`/organisations/${params.org}/invites/${i.id}/`);
      toast(`Invitation of ${i.email} withdrawn`);
      invites.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <>
      <PageHeader title="Invites" subtitle={`Invite people to ${org?.name ?? 'the organisation'}. An invitation is valid for 7 days and can be used once.`} />
      {invites.error?.status === 403 ? (
        <Refusal error={invites.error} what="invitations" />
      ) : (
        <>
          <form class="card form" onSubmit={invite}>
            <h2>Invite people</h2>
            <Alert error={error && !error.fields.invites && !error.fields.email ? error : null} />
            <TextField
              label="Email addresses"
              type="text"
              value={email}
              onInput={setEmail}
              error={error?.fields.invites || error?.fields.email}
              hint="One or more, separated by commas or spaces."
            />
            <div class="grid-2">
              <SelectField label="Role" value={role} onChange={setRole} options={ROLES} />
              {(groups.data || []).length > 0 && (
                <SelectField
                  label="Group"
                  value={group}
                  onChange={setGroup}
                  options={[{ value: '', label: 'No group' }, ...groups.data.map((g) => ({ value: String(g.id), label: g.name }))]}
                />
              )}
            </div>
            <div class="form-actions">
              <Button kind="primary" type="submit" disabled={!email.trim()}>
                Send invitations
              </Button>
            </div>
          </form>
          <section class="card">
            <h2>Waiting for an answer</h2>
            <Alert error={invites.error} />
            {(invites.data || []).length === 0 ? (
              <p class="muted">No open invitations.</p>
            ) : (
              <table class="table compact">
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col" class="hide-phone">
                      Expires
                    </th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {invites.data.map((i) => (
                    <tr key={i.id}>
                      <td class="break">{i.email}</td>
                      <td>{roleName(i.role)}</td>
                      <td class="hide-phone">{i.expires_at ? dateTime(i.expires_at) : 'never'}</td>
                      <td class="actions">
                        <Button kind="ghost" onClick={() => cancel(i)} aria-label={`Withdraw the invitation of ${i.email}`}>
                          Withdraw
                        </Button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
      {links && (
        <Dialog title="Send these links yourself" onClose={() => setLinks(null)}>
          <p>No email was sent (this server has no mail settings). Give each person their link; it is shown only now.</p>
          {links.map((l) => (
            <div key={l.invite.id} class="field">
              <span class="label-like">{l.invite.email}</span>
              <code class="key" aria-label={`Invitation link for ${l.invite.email}`}>
                {l.join_url}
              </code>
              {l.email_error && <p class="hint">Mail failed: {l.email_error}</p>}
            </div>
          ))}
          <div class="form-actions">
            <Button kind="primary" onClick={() => setLinks(null)}>
              Done
            </Button>
          </div>
        </Dialog>
      )}
    </>
  );
}

export function Groups({ params }) {
  const org = usePlace().organisation;
  const groups = useLoad(() => all(`/organisations/${params.org}/groups/`), [params.org]);
  const members = useLoad(() => all(`/organisations/${params.org}/users/`), [params.org]);
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await post(`/organisations/${params.org}/groups/`, { name: name.trim() });
      toast(`Group ${name} created`);
      setName('');
      groups.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <PageHeader title="Groups" subtitle={`Give several people of ${org?.name ?? 'the organisation'} the same permissions at once: grant them to a group in a project's or environment's settings.`} />
      {groups.error?.status === 403 ? (
        <Refusal error={groups.error} what="groups" />
      ) : (
        <>
          <Alert error={groups.error} />
          {(groups.data || []).length === 0 && !groups.loading && <Empty title="No groups yet">For example “Developers” or “Product”.</Empty>}
          {(groups.data || []).map((g) => (
            <GroupCard key={g.id} org={params.org} group={g} members={members.data || []} onChanged={groups.reload} />
          ))}
          <form class="card form inline-form" onSubmit={create}>
            <Alert error={error && !error.fields.name ? error : null} />
            <TextField label="New group name" value={name} onInput={setName} error={error?.fields.name} />
            <Button kind="primary" type="submit" disabled={!name.trim()}>
              Create group
            </Button>
          </form>
        </>
      )}
    </>
  );
}

function GroupCard({ org, group, members, onChanged }) {
  const [adding, setAdding] = useState('');
  const base = `/organisations/${org}/groups/${group.id}`;
  const act = async (what, ids, message) => {
    try {
      await post(`${base}/${what}/`, { user_ids: ids });
      toast(message);
      setAdding('');
      onChanged();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const remove = async () => {
    try {
      await del(`${base}/`);
      toast(`Group ${group.name} deleted`);
      onChanged();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const outside = members.filter((m) => !group.users.some((u) => u.id === m.id));
  return (
    <section class="card">
      <div class="row spread">
        <h2>{group.name}</h2>
        <Button kind="ghost" onClick={remove} aria-label={`Delete group ${group.name}`}>
          Delete group
        </Button>
      </div>
      {group.users.length === 0 ? (
        <p class="muted">No members.</p>
      ) : (
        <ul class="link-list">
          {group.users.map((u) => (
            <li key={u.id}>
              <span>{personName(u)}</span>
              <span class="muted small">{u.email}</span>
              <Button kind="ghost" onClick={() => act('remove-users', [u.id], `${personName(u)} left ${group.name}`)} aria-label={`Remove ${u.email} from ${group.name}`}>
                Remove
              </Button>
            </li>
          ))}
        </ul>
      )}
      {outside.length > 0 && (
        <div class="inline-form">
          <SelectField
            label={`Add a member to ${group.name}`}
            value={adding}
            onChange={setAdding}
            options={[{ value: '', label: 'Choose a person…' }, ...outside.map((m) => ({ value: String(m.id), label: m.email }))]}
          />
          <Button onClick={() => act('add-users', [Number(adding)], `Added to ${group.name}`)} disabled={!adding}>
            Add to group
          </Button>
        </div>
      )}
    </section>
  );
}

export function ApiKeys({ params }) {
  const org = usePlace().organisation;
  const keys = useLoad(() => all(`/organisations/${params.org}/master-api-keys/`), [params.org]);
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await post(`/organisations/${params.org}/master-api-keys/`, { name: name.trim(), is_admin: admin }));
      setName('');
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (k) => {
    try {
      await del(`/organisations/${params.org}/master-api-keys/${k.prefix}/`);
      toast(`Key ${k.name} revoked`);
      keys.reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <>
      <PageHeader
        title="API keys"
        subtitle={`Keys for scripts and tools acting for ${org?.name ?? 'the organisation'} (Flagsmith's "organisation API keys"). Send as Authorization: Api-Key <key>.`}
      />
      {keys.error?.status === 403 ? (
        <Refusal error={keys.error} what="API keys" />
      ) : (
        <>
          <section class="card">
            <Alert error={keys.error} />
            {(keys.data || []).length === 0 ? (
              <p class="muted">No API keys.</p>
            ) : (
              <table class="table compact">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Starts with</th>
                    <th scope="col" class="hide-phone">
                      Last used
                    </th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {keys.data.map((row) => {
                    const k = row.key || row;
                    return (
                      <tr key={k.prefix}>
                        <td>
                          {k.name} {k.is_admin && <span class="chip chip-info">admin</span>}
                          {(row.revoked || row.has_expired) && <span class="chip chip-muted">{row.revoked ? 'revoked' : 'expired'}</span>}
                        </td>
                        <td>
                          <code>{k.prefix}…</code>
                        </td>
                        <td class="hide-phone">{k.last_used_at ? ago(k.last_used_at) : 'never'}</td>
                        <td class="actions">
                          {!row.revoked && (
                            <Button kind="ghost" onClick={() => revoke(k)} aria-label={`Revoke key ${k.name}`}>
                              Revoke
                            </Button>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
          </section>
          <form class="card form" onSubmit={create}>
            <h2>Create an API key</h2>
            <Alert error={error && !error.fields.name ? error : null} />
            <TextField label="Key name" value={name} onInput={setName} error={error?.fields.name} placeholder="CI pipeline" />
            <Checkbox
              label="Administrator key"
              hint="Acts as an organisation administrator. Otherwise the key has only the permissions you grant it in projects and environments."
              checked={admin}
              onChange={setAdmin}
            />
            <div class="form-actions">
              <Button kind="primary" type="submit" disabled={!name.trim()}>
                Create API key
              </Button>
            </div>
          </form>
        </>
      )}
      {created && (
        <Dialog title="Your new API key" onClose={() => setCreated(null)}>
          <p>Copy it now: it is shown only this once.</p>
          <code class="key" aria-label="New key">
            {created.secret || created.key}
          </code>
          <div class="form-actions">
            <Button kind="primary" onClick={() => setCreated(null)}>
              I have copied it
            </Button>
          </div>
        </Dialog>
      )}
    </>
  );
}
