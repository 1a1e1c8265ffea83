// End-to-end: people and permissions through the dashboard, against a real `flagstone serve`.
// An administrator invites someone from the organisation's Invites page; the invitee accepts
// in a browser of their own, can look at Production's flags but not switch them (the page says
// why, the API refuses with 403 and nothing changes); once granted "Update feature state" in
// Development from that environment's settings page, they can switch flags there — and still
// not in Production.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, within } from './harness.mjs';
import { seedDemo } from './seed.mjs';
import { bootstrapAdmin, signedInPage } from './session.mjs';

let server;
let browser;
let demo;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  await bootstrapAdmin(server);
  demo = await seedDemo(server.api);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const envPath = (env) => `/projects/${demo.project.id}/environments/${env.api_key}`;

async function sdkFlags(env) {
  const r = await fetch(`${server.base}/api/v1/flags/`, { headers: { 'X-Environment-Key': env.api_key } });
  assert.equal(r.status, 200);
  return Object.fromEntries((await r.json()).map((f) => [f.feature.name, f]));
}

const stateOf = async (env, feature) =>
  (await server.api('GET', `/environments/${env.api_key}/featurestates/?feature=${feature.id}`)).results[0];

test('an invited user cannot toggle Production without permission; granted it in Development, they can there', async () => {
  const GRACE = 'grace@acme.example';
  const PASSWORD = 'grace hopper compiles';

  // The administrator invites Grace as a plain user from the dashboard.
  const admin = await signedInPage(browser, server);
  await admin.goto(`${server.base}/organisations/${demo.org.id}/invites`);
  await admin.getByLabel('Email addresses').fill(GRACE);
  await admin.getByLabel('Role').selectOption('USER');
  await admin.getByRole('button', { name: 'Send invitations' }).click();
  // No mail server is configured: the dashboard shows the link to pass on, once.
  const link = await admin.getByLabel(`Invitation link for ${GRACE}`).innerText();
  assert.match(link, /\/invite\/[^/]+$/);
  await admin.getByRole('button', { name: 'Done' }).click();
  await admin.getByRole('cell', { name: GRACE, exact: true }).waitFor();

  // Grace accepts in her own browser: the invitation page creates her account and signs her in.
  const graceCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const grace = await graceCtx.newPage();
  grace.on('pageerror', (e) => console.log('# page error:', e.message));
  await grace.goto(link);
  await grace.getByRole('heading', { name: 'Accept your invitation' }).waitFor();
  await grace.getByLabel('Email').fill(GRACE);
  await grace.getByLabel('First name').fill('Grace');
  await grace.getByLabel('Password').fill(PASSWORD);
  await grace.getByRole('button', { name: 'Create account' }).click();
  await grace.waitForURL((url) => !url.pathname.startsWith('/invite'));
  await grace.getByRole('button', { name: 'Sign out' }).waitFor();
  // She is now a member, with the role she was invited with, and the invitation is used up.
  const rows = (r) => (Array.isArray(r) ? r : r.results);
  const member = rows(await server.api('GET', `/organisations/${demo.org.id}/users/`)).find((m) => m.email === GRACE);
  assert.ok(member, 'Grace is a member of Acme');
  assert.equal(member.role, 'USER');

  // A user sees nothing until granted; the project's administrator lets her view the project
  // and both environments (read-only), through the API as any client could.
  await server.api('POST', `/projects/${demo.project.id}/user-permissions/`, { user: member.id, permissions: ['VIEW_PROJECT'], admin: false });
  for (const env of [demo.prod, demo.dev]) {
    await server.api('POST', `/environments/${env.api_key}/user-permissions/`, { user: member.id, permissions: ['VIEW_ENVIRONMENT'], admin: false });
  }

  // Production: the switch is there, read-only, and the page says why in words.
  const before = await stateOf(demo.prod, demo.features.checkout_v2);
  await grace.goto(`${server.base}${envPath(demo.prod)}/features`);
  const prodSwitch = grace.getByRole('switch', { name: 'checkout_v2' });
  await prodSwitch.waitFor();
  await within(3000, async () => prodSwitch.isDisabled());
  const reasonId = await prodSwitch.getAttribute('aria-describedby');
  const reason = await grace.locator(`#${reasonId}`).innerText();
  assert.match(reason, /can view the flags of Production but not change them/);
  assert.match(reason, /Update feature state/);
  await prodSwitch.click({ force: true }); // a disabled control does nothing
  // The API is the authority: the same change sent with her session (and CSRF token) is
  // refused with 403 naming the missing permission.
  const refused = await grace.evaluate(
    async ({ key, id }) => {
      const { csrf_token } = await (await fetch('/api/v1/auth/session/')).json();
      const r = await fetch(`/api/v1/environments/${key}/featurestates/${id}/`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf_token },
        body: JSON.stringify({ enabled: false }),
      });
      return { status: r.status, body: await r.json() };
    },
    { key: demo.prod.api_key, id: before.id },
  );
  assert.equal(refused.status, 403);
  assert.equal(refused.body.missing_permission, 'UPDATE_FEATURE_STATE');
  const afterRefusal = await stateOf(demo.prod, demo.features.checkout_v2);
  assert.equal(afterRefusal.enabled, before.enabled);
  assert.equal((await sdkFlags(demo.prod)).checkout_v2.enabled, before.enabled);

  // The administrator gives her "Update feature state" in Development, from its settings page.
  await admin.goto(`${server.base}${envPath(demo.dev)}/settings`);
  await admin.getByRole('button', { name: 'Change the access of Grace' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Access of Grace' });
  await dialog.getByLabel('Update the state or value for a given feature state.').check();
  await dialog.getByRole('button', { name: 'Save access' }).click();
  await admin.getByRole('dialog').waitFor({ state: 'detached' });
  const grants = rows(await server.api('GET', `/environments/${demo.dev.api_key}/user-permissions/`));
  const grant = grants.find((g) => g.user?.id === member.id);
  assert.deepEqual(grant.permissions.slice().sort(), ['UPDATE_FEATURE_STATE', 'VIEW_ENVIRONMENT']);

  // Development: her switch works, and SDKs see the change.
  await grace.goto(`${server.base}${envPath(demo.dev)}/features`);
  const devSwitch = grace.getByRole('switch', { name: 'gift_cards' });
  await devSwitch.waitFor();
  await within(3000, async () => !(await devSwitch.isDisabled()));
  assert.equal(await grace.locator('#no-toggle').count(), 0);
  const was = (await stateOf(demo.dev, demo.features.gift_cards)).enabled;
  await devSwitch.click();
  await within(3000, async () => (await sdkFlags(demo.dev)).gift_cards?.enabled === !was);
  assert.equal((await stateOf(demo.dev, demo.features.gift_cards)).enabled, !was);

  // A permission holds only where it was granted: Production stays read-only.
  await grace.goto(`${server.base}${envPath(demo.prod)}/features`);
  await grace.getByRole('switch', { name: 'checkout_v2' }).waitFor();
  await within(3000, async () => grace.getByRole('switch', { name: 'checkout_v2' }).isDisabled());
  assert.equal((await stateOf(demo.prod, demo.features.checkout_v2)).enabled, before.enabled);

  await graceCtx.close();
  await admin.context().close();
});
