import { useEffect, useState } from 'preact/hooks';
import { post } from '../lib/api.js';
import { navigate } from '../lib/router.jsx';
import { Alert, Button, TextField } from '../components/ui.jsx';

/** Where to go after signing in: a path of this app only (never another site). */
export function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function SignIn({ session, onSignedIn }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = 'Sign in · Flagstone';
    if (session.state === 'in') navigate(nextPath(), { replace: true });
  }, [session.state]);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = await post('/auth/session/', { email, password });
      onSignedIn(body);
      navigate(nextPath(), { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="auth-page">
      <form class="auth-card" onSubmit={submit} noValidate>
        <div class="brand brand-large" aria-hidden="true">
          <span class="brand-mark">⚑</span> Flagstone
        </div>
        <h1>Sign in</h1>
        <Alert error={error && !error.fields.email && !error.fields.password ? error : null} />
        <TextField label="Email" type="email" autocomplete="username" value={email} onInput={setEmail} error={error?.fields.email} required />
        <TextField
          label="Password"
          type="password"
          autocomplete="current-password"
          value={password}
          onInput={setPassword}
          error={error?.fields.password}
          required
        />
        <Button kind="primary" type="submit" busy={busy} disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
        <p class="hint">Invited to an organisation? Open the link from your invitation to create your account.</p>
      </form>
    </main>
  );
}
