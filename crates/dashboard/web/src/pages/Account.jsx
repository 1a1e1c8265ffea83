// Your account: name, and changing the password (which signs you out everywhere).
import { useState } from 'preact/hooks';
import { patch, post } from '../lib/api.js';
import { useSession } from '../lib/session.jsx';
import { Alert, Button, PageHeader, TextField, toast } from '../components/ui.jsx';

export function Account() {
  const { user, setUser, signedOut } = useSession();
  return (
    <>
      <PageHeader title="Your account" subtitle={user?.email} />
      <Profile user={user} onSaved={setUser} />
      <ChangePassword onChanged={signedOut} />
    </>
  );
}

function Profile({ user, onSaved }) {
  const [first, setFirst] = useState(user?.first_name ?? '');
  const [last, setLast] = useState(user?.last_name ?? '');
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      onSaved(await patch('/auth/users/me/', { first_name: first, last_name: last }));
      toast('Name saved');
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>Name</h2>
      <Alert error={error && !error.fields.first_name && !error.fields.last_name ? error : null} />
      <div class="grid-2">
        <TextField label="First name" value={first} onInput={setFirst} error={error?.fields.first_name} />
        <TextField label="Last name" value={last} onInput={setLast} error={error?.fields.last_name} />
      </div>
      <div class="form-actions">
        <Button kind="primary" type="submit">
          Save name
        </Button>
      </div>
    </form>
  );
}

function ChangePassword({ onChanged }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await post('/auth/users/set_password/', { current_password: current, new_password: next });
      onChanged('Your password was changed. Sign in again with the new one.');
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card form" onSubmit={submit}>
      <h2>Change password</h2>
      <p class="hint">Changing it signs you out on every device, this one included.</p>
      <Alert error={error && !error.fields.current_password && !error.fields.new_password ? error : null} />
      <TextField label="Current password" type="password" autocomplete="current-password" value={current} onInput={setCurrent} error={error?.fields.current_password} />
      <TextField label="New password" type="password" autocomplete="new-password" value={next} onInput={setNext} error={error?.fields.new_password} />
      <div class="form-actions">
        <Button kind="primary" type="submit" disabled={!current || !next}>
          Change password
        </Button>
      </div>
    </form>
  );
}
