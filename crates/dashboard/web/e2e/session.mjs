// Signing the browser in for a test. Until user accounts land, the harness (never the app)
// adds the admin key to the browser's requests and answers the session endpoint itself.
import { ADMIN_KEY } from './harness.mjs';

export async function signedInPage(browser, server, viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport, extraHTTPHeaders: { Authorization: `Api-Key ${ADMIN_KEY}` } });
  await ctx.route('**/api/v1/auth/session/', (route) =>
    route.fulfill({ json: { user: { id: 1, email: 'admin@example.com', first_name: 'Admin' }, csrf_token: 'test' } }),
  );
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log('# page error:', e.message));
  return page;
}
