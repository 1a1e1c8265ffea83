// Signing the browser in for a test, through the sign-in page like a person: the cookie
// session is the only credential the browser ever holds.
export const ADMIN_EMAIL = 'ada@acme.example';
export const ADMIN_PASSWORD = 'correct horse battery staple';

/** Creates the installation's first account (superuser, administrator of `organisation`). */
export async function bootstrapAdmin(server, organisation = 'Acme') {
  const r = await fetch(`${server.base}/api/v1/auth/users/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD, first_name: 'Ada', organisation_name: organisation }),
  });
  if (r.status !== 201) throw new Error(`bootstrap sign-up: ${r.status} ${await r.text()}`);
  return r.json();
}

/** A new browser context signed in as `email` through /login; returns its page. */
export async function signedInPage(browser, server, viewport = { width: 1280, height: 900 }, email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log('# page error:', e.message));
  await page.goto(`${server.base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  return page;
}
