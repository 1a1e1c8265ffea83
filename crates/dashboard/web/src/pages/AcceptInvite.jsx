// `/invite/{hash}`: the link in an invitation. A visitor creates their account with it; a
// signed-in person joins the organisation with their current account.
import { useState } from 'preact/hooks';
import { post } from '../lib/api.js';
import { navigate } from '../lib/router.jsx';
import { Alert, Button } from '../components/ui.jsx';
import { SignUpForm } from './SignUp.jsx';

export function AcceptInvite({ params, session, onSignedIn }) {
  const [error, setError] = useState(null);
  if (session.state === 'loading') return null;
  if (session.state === 'in') {
    const join = async () => {
      try {
        const hash = encodeURIComponent(params.hash);
        // An invitation sent to an email, or a shared invite link.
        await post(`/users/join/${hash}/`).catch((err) => {
          if (err.status === 403 || err.status === 404) return post(`/users/join/link/${hash}/`);
          throw err;
        });
        navigate('/', { replace: true });
        location.reload();
      } catch (err) {
        setError(err);
      }
    };
    return (
      <main class="auth-page">
        <div class="auth-card">
          <h1>Join the organisation</h1>
          <p>You are signed in as {session.user.email}. Join the organisation that invited you with this account?</p>
          <Alert error={error} />
          <Button kind="primary" onClick={join}>
            Join organisation
          </Button>
        </div>
      </main>
    );
  }
  return (
    <SignUpForm
      inviteHash={params.hash}
      onSignedIn={onSignedIn}
      title="Accept your invitation"
      intro="Create your account to join the organisation that invited you."
    />
  );
}
