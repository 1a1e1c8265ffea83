// Accepting an invitation: completed once issue 9's invite endpoints are on main.
export function AcceptInvite() {
  return (
    <main class="auth-page">
      <div class="auth-card">
        <h1>Accept invitation</h1>
        <p>Invitations are not available on this server yet.</p>
      </div>
    </main>
  );
}
