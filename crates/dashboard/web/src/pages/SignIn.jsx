import { useEffect, useState } from 'preact/hooks';
import { post } from '../lib/api.js';
import { Link, navigate } from '../lib/router.jsx';
import { Alert, Button, TextField } from '../components/ui.jsx';

// A message for the next sign-in page (e.g. "password changed"), kept in memory, never in
// the URL (a link could otherwise make the page say anything).
let pendingNotice = null;
export function setSignInNotice(message) {
  pendingNotice = message || null;
}
function takeNotice() {
  const n = pendingNotice;
  pendingNotice = null;
  return n;
}

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
  const [notice] = useState(() => takeNotice());
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
        {notice && <Alert kind="info" error={{ message: notice }} />}
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
        <p class="hint">
          Invited? Open the link in your invitation to create your account. Setting up a new installation?{' '}
          <Link href="/signup">Create the first account</Link>.
        </p>
      </form>
    </main>
  );
}
