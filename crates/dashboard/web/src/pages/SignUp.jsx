// Creating an account: the installation's first (administrator) account, an invited person's
// account (`/invite/{hash}`), or any account where open sign-up is allowed. On success the
// browser signs in with the new account (cookie session).
import { useEffect, useState } from 'preact/hooks';
import { post } from '../lib/api.js';
import { Link, navigate } from '../lib/router.jsx';
import { Alert, Button, TextField } from '../components/ui.jsx';

export function SignUpForm({ inviteHash, onSignedIn, title, intro }) {
  const [email, setEmail] = useState('');
  const [firstName, setFirstName] = useState('');
  const [lastName, setLastName] = useState('');
  const [password, setPassword] = useState('');
  const [organisation, setOrganisation] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = `${title} · Flagstone`;
  }, [title]);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { email, password, first_name: firstName, last_name: lastName };
      if (inviteHash) body.invite_hash = inviteHash;
      else if (organisation.trim()) body.organisation_name = organisation.trim();
      await post('/auth/users/', body);
      onSignedIn(await post('/auth/session/', { email, password }));
      navigate('/', { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fields = ['email', 'password', 'first_name', 'last_name', 'organisation_name', 'invite_hash'];
  return (
    <main class="auth-page">
      <form class="auth-card" onSubmit={submit} noValidate>
        <div class="brand brand-large" aria-hidden="true">
          <span class="brand-mark">⚑</span> Flagstone
        </div>
        <h1>{title}</h1>
        {intro && <p class="hint">{intro}</p>}
        <Alert error={error && !fields.some((f) => error.fields[f] && f !== 'invite_hash') ? error : null} />
        {error?.fields.invite_hash && <Alert error={{ message: error.fields.invite_hash }} />}
        <TextField label="Email" type="email" autocomplete="username" value={email} onInput={setEmail} error={error?.fields.email} />
        <div class="grid-2">
          <TextField label="First name" autocomplete="given-name" value={firstName} onInput={setFirstName} error={error?.fields.first_name} />
          <TextField label="Last name" autocomplete="family-name" value={lastName} onInput={setLastName} error={error?.fields.last_name} />
        </div>
        <TextField
          label="Password"
          type="password"
          autocomplete="new-password"
          value={password}
          onInput={setPassword}
          error={error?.fields.password}
          hint="At least 8 characters; not only digits; not your email."
        />
        {!inviteHash && (
          <TextField
            label="Organisation name"
            value={organisation}
            onInput={setOrganisation}
            error={error?.fields.organisation_name}
            hint="For the first account of a new installation: the organisation it will administer."
          />
        )}
        <Button kind="primary" type="submit" busy={busy} disabled={busy}>
          {busy ? 'Creating your account…' : 'Create account'}
        </Button>
        <p class="hint">
          Already have an account? <Link href="/login">Sign in</Link>
        </p>
      </form>
    </main>
  );
}

export function SignUp({ onSignedIn }) {
  return (
    <SignUpForm
      onSignedIn={onSignedIn}
      title="Create an account"
      intro="The first account of a new Flagstone installation becomes its administrator. After that, people join by invitation."
    />
  );
}
