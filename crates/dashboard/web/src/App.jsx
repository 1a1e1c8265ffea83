// The app: restores the session (cookie + CSRF token), shows the sign-in and invite pages to
// visitors, and the shell with the page the URL names to signed-in users.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, get, setCsrfToken, whenSignedOut } from './lib/api.js';
import { matchPath, navigate, useLocation } from './lib/router.jsx';
import { Session } from './lib/session.jsx';
import { Loading, Toasts } from './components/ui.jsx';
import { Shell } from './components/Shell.jsx';
import { SignIn, setSignInNotice } from './pages/SignIn.jsx';
import { AcceptInvite } from './pages/AcceptInvite.jsx';
import { SignUp } from './pages/SignUp.jsx';

/** Pages a visitor may see without signing in. */
const publicRoutes = [
  { path: '/login', component: SignIn },
  { path: '/invite/:hash', component: AcceptInvite },
  { path: '/signup', component: SignUp },
];

export function App() {
  const [session, setSession] = useState({ state: 'loading' });
  const { path } = useLocation();

  const signedIn = (body) => {
    setCsrfToken(body.csrf_token);
    setSession({ state: 'in', user: body.user });
  };
  /** The server already ended the session (e.g. a password change): show why on sign-in. */
  const signedOut = (message) => {
    setCsrfToken(null);
    setSession({ state: 'out' });
    setSignInNotice(message);
    navigate('/login', { replace: true });
  };
  const signOut = async () => {
    try {
      await del('/auth/session/');
    } catch {
      // Signed out either way: the server forgets the session or it was gone already.
    }
    setCsrfToken(null);
    setSession({ state: 'out' });
    navigate('/login', { replace: true });
  };

  useEffect(() => {
    whenSignedOut(() => {
      setCsrfToken(null);
      setSession({ state: 'out' });
    });
    get('/auth/session/').then(signedIn, (e) => {
      if (e instanceof ApiError && e.status !== 0 && e.status < 500) setSession({ state: 'out' });
      else setSession({ state: 'error', error: e });
    });
  }, []);

  for (const r of publicRoutes) {
    const params = matchPath(r.path, path);
    if (params) {
      const Page = r.component;
      return (
        <>
          <Page params={params} session={session} onSignedIn={signedIn} />
          <Toasts />
        </>
      );
    }
  }
  if (session.state === 'loading') return <Loading label="Opening Flagstone…" />;
  if (session.state === 'error') {
    return (
      <main class="center-page">
        <p role="alert">{session.error.message}</p>
      </main>
    );
  }
  if (session.state === 'out') {
    const next = path === '/' ? '' : `?next=${encodeURIComponent(path + location.search)}`;
    navigate(`/login${next}`, { replace: true });
    return null;
  }
  return (
    <Session.Provider value={{ user: session.user, signOut, signedOut, setUser: (user) => setSession({ ...session, user }) }}>
      <Shell />
      <Toasts />
    </Session.Provider>
  );
}
