// Who may do what in a project or an environment: the grants to people and groups, with the
// permission catalogue's own descriptions. Shown to those who may manage them (admins).
import { useState } from 'preact/hooks';
import { all, del, get, patch, post } from '../lib/api.js';
import { Alert, Button, Checkbox, Dialog, SelectField, toast, useLoad } from './ui.jsx';

const holderName = (g) => {
  const h = g.user || g.group || g.master_api_key || {};
  return [h.first_name, h.last_name].filter(Boolean).join(' ') || h.email || h.name || `#${h.id}`;
};

/**
 * `scope`: `/projects/{id}` or `/environments/{key}`; `kind`: `projects` or `environments`
 * (which permission catalogue applies); `org`: the organisation id (its people and groups).
 */
export function AccessCard({ scope, kind, org, title }) {
  const users = useLoad(() => all(`${scope}/user-permissions/`), [scope]);
  const groups = useLoad(() => all(`${scope}/user-group-permissions/`).catch(() => []), [scope]);
  const catalogue = useLoad(() => get(`/${kind}/permissions/`), [kind]);
  const people = useLoad(() => (org ? all(`/organisations/${org}/users/`).catch(() => []) : Promise.resolve([])), [org]);
  const orgGroups = useLoad(() => (org ? all(`/organisations/${org}/groups/`).catch(() => []) : Promise.resolve([])), [org]);
  const [editing, setEditing] = useState(null);
  if (users.error) return null; // not an admin here: the API says so, the page stays quiet
  if (!users.data || !catalogue.data) return null;
  const reload = () => {
    users.reload();
    groups.reload();
  };
  const rows = [...users.data.map((g) => ({ ...g, holderKind: 'user' })), ...(groups.data || []).map((g) => ({ ...g, holderKind: 'group' }))];
  const remove = async (g) => {
    try {
      await del(`${scope}/${g.holderKind === 'user' ? 'user' : 'user-group'}-permissions/${g.id}/`);
      toast(`Access of ${holderName(g)} removed`);
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  return (
    <section class="card">
      <h2>{title}</h2>
      <p class="hint">Organisation administrators may do everything. Everyone else needs a grant here.</p>
      {rows.length === 0 ? (
        <p class="muted">No one has been granted access yet.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Who</th>
              <th scope="col">May</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((g) => (
              <tr key={`${g.holderKind}${g.id}`}>
                <td>
                  {holderName(g)} {g.holderKind === 'group' && <span class="chip">group</span>}
                </td>
                <td>
                  {g.admin ? (
                    <span class="chip chip-info">administrator</span>
                  ) : g.permissions.length ? (
                    g.permissions.map((p) => (
                      <span class="chip" key={p}>
                        {p.toLowerCase().replaceAll('_', ' ')}
                      </span>
                    ))
                  ) : (
                    <span class="muted">nothing yet</span>
                  )}
                </td>
                <td class="actions">
                  <Button kind="ghost" onClick={() => setEditing(g)} aria-label={`Change the access of ${holderName(g)}`}>
                    Change
                  </Button>
                  <Button kind="ghost" onClick={() => remove(g)} aria-label={`Remove the access of ${holderName(g)}`}>
                    Remove
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Button onClick={() => setEditing({ holderKind: 'user', permissions: [], admin: false })}>Grant access</Button>
      {editing && (
        <GrantDialog
          grant={editing}
          scope={scope}
          catalogue={catalogue.data}
          people={(people.data || []).filter((p) => !users.data.some((g) => g.user?.id === p.id))}
          groups={(orgGroups.data || []).filter((o) => !(groups.data || []).some((g) => g.group?.id === o.id))}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
    </section>
  );
}

function GrantDialog({ grant, scope, catalogue, people, groups, onClose, onSaved }) {
  const isNew = grant.id === undefined;
  const [holder, setHolder] = useState('');
  const [admin, setAdmin] = useState(grant.admin);
  const [perms, setPerms] = useState(new Set(grant.permissions));
  const [error, setError] = useState(null);
  const toggle = (key, on) => {
    const next = new Set(perms);
    if (on) next.add(key);
    else next.delete(key);
    setPerms(next);
  };
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const body = { permissions: [...perms], admin };
    try {
      if (isNew) {
        const [kind, id] = holder.split(':');
        body[kind] = Number(id);
        await post(`${scope}/${kind === 'user' ? 'user' : 'user-group'}-permissions/`, body);
      } else {
        await patch(`${scope}/${grant.holderKind === 'user' ? 'user' : 'user-group'}-permissions/${grant.id}/`, body);
      }
      toast('Access saved');
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title={isNew ? 'Grant access' : `Access of ${holderName(grant)}`} onClose={onClose} wide>
      <form class="form" onSubmit={save}>
        <Alert error={error && !error.fields.user && !error.fields.group ? error : null} />
        {isNew && (
          <SelectField
            label="Person or group"
            value={holder}
            onChange={setHolder}
            error={error?.fields.user || error?.fields.group}
            options={[
              { value: '', label: 'Choose…' },
              ...people.map((p) => ({ value: `user:${p.id}`, label: p.email })),
              ...groups.map((g) => ({ value: `group:${g.id}`, label: `Group: ${g.name}` })),
            ]}
          />
        )}
        <Checkbox label="Administrator (every permission here)" checked={admin} onChange={setAdmin} />
        <fieldset disabled={admin}>
          <legend>Permissions</legend>
          {catalogue.map((p) => (
            <Checkbox key={p.key} label={p.description} hint={p.key} checked={admin || perms.has(p.key)} onChange={(on) => toggle(p.key, on)} />
          ))}
        </fieldset>
        <div class="form-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" disabled={isNew && !holder}>
            Save access
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
