// End-to-end: change requests through the dashboard, against a real `flagstone serve`. An
// administrator makes Production require one approval from its settings page; Grace (allowed
// to update feature states and to request changes, not an administrator) finds her direct
// change refused in words, requests the change from the feature's page instead, and cannot
// approve her own request; the administrator approves and commits it, and SDKs see the change.
// A request made stale by a change in between is refused at commit with the reason in words,
// and closed after a confirmation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, within } from './harness.mjs';
import { seedDemo, seedPeople } from './seed.mjs';
import { ADMIN_EMAIL, bootstrapAdmin, signedInPage } from './session.mjs';

const GRACE = 'grace@acme.example';
const PASSWORD = 'a long enough password';

let server;
let browser;
let demo;
let grace;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  await bootstrapAdmin(server);
  demo = await seedDemo(server.api);
  ({ grace } = await seedPeople(server.base, server.api, demo));
  // Grace may change Production's flags and request changes there; she is no administrator.
  await server.api('POST', `/environments/${demo.prod.api_key}/user-permissions/`, {
    user: grace.id,
    permissions: ['VIEW_ENVIRONMENT', 'UPDATE_FEATURE_STATE', 'CREATE_CHANGE_REQUEST', 'APPROVE_CHANGE_REQUEST'],
    admin: false,
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const prod = () => `/projects/${demo.project.id}/environments/${demo.prod.api_key}`;

async function sdkFlags() {
  const r = await fetch(`${server.base}/api/v1/flags/`, { headers: { 'X-Environment-Key': demo.prod.api_key } });
  assert.equal(r.status, 200);
  return Object.fromEntries((await r.json()).map((f) => [f.feature.name, f]));
}

const stateOf = async (feature) =>
  (await server.api('GET', `/environments/${demo.prod.api_key}/featurestates/?feature=${feature.id}`)).results[0];

/** The words a disabled control points to with aria-describedby. */
async function reasonFor(page, control) {
  const ids = (await control.getAttribute('aria-describedby')) || '';
  assert.ok(ids, 'the disabled control names its reason');
  return page.locator(`#${ids.split(' ')[0]}`).innerText();
}

test('a change to Production is requested, cannot be approved by its author, and is approved and committed by an administrator', async () => {
  const gifts = demo.features.gift_cards;
  assert.equal((await sdkFlags()).gift_cards.enabled, false);

  // Grace opens Production's features while it still takes direct changes: her switch works.
  const g = await signedInPage(browser, server, { width: 1280, height: 900 }, GRACE, PASSWORD);
  await g.goto(`${server.base}${prod()}/features`);
  const sw = g.getByRole('switch', { name: 'gift_cards' });
  await sw.waitFor();
  await within(3000, async () => !(await sw.isDisabled()));

  // The administrator requires one approval for Production, from its settings page.
  const admin = await signedInPage(browser, server);
  await admin.goto(`${server.base}${prod()}/settings`);
  await admin.getByLabel('Minimum approvals for changes').fill('1');
  await admin.getByRole('button', { name: 'Save approvals' }).click();
  await admin.getByText(/^Changes to Production need 1 approval:/).waitFor();
  assert.equal((await server.api('GET', `/environments/${demo.prod.api_key}/`)).minimum_change_request_approvals, 1);
  await admin.getByRole('button', { name: 'Stop requiring approvals' }).waitFor();

  // Grace's page predates the setting: her direct change is refused (403
  // change_request_required), the page says so in words, and nothing changes.
  const refused = g.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes('/featurestates/'));
  await sw.click();
  const res = await refused;
  assert.equal(res.status(), 403);
  assert.equal((await res.json()).error, 'change_request_required');
  await g.getByText(/gift_cards was not changed: This environment takes changes only through change requests/).waitFor();
  assert.equal(await sw.getAttribute('aria-checked'), 'false');
  assert.equal((await stateOf(gifts)).enabled, false);
  assert.equal((await sdkFlags()).gift_cards.enabled, false);

  // Reloaded, the features page explains it and the switch is read-only.
  await g.reload();
  await sw.waitFor();
  await within(3000, async () => sw.isDisabled());
  assert.match(await reasonFor(g, sw), /Changes to Production go through change requests: each needs 1 approval/);

  // She requests the change from the feature's page.
  await g.goto(`${server.base}${prod()}/features/${gifts.id}`);
  const request = g.getByRole('button', { name: 'Request this change' });
  await request.waitFor();
  assert.equal(await g.getByRole('button', { name: /^Save Production state$/ }).count(), 0);
  await g.getByRole('switch', { name: 'gift_cards' }).click();
  assert.ok(await request.isDisabled(), 'a request needs a title');
  await g.getByLabel('Title', { exact: true }).fill('Launch gift cards');
  await g.getByLabel('Description (optional)').fill('Payments team has tested redemption.');
  await request.click();
  await g.waitForURL(/\/change-requests\/\d+$/);
  const id = Number(new URL(g.url()).pathname.split('/').pop());
  await g.getByRole('heading', { name: 'Launch gift cards' }).waitFor();
  const changes = g.getByRole('region', { name: 'What committing it now changes in Production' });
  assert.match(await changes.innerText(), /gift_cards — On\/off: off → on/);
  // Only the field she changed is requested, and nothing is applied yet.
  const opened = await server.api('GET', `/change-requests/${id}/`);
  assert.deepEqual(opened.feature_states, [{ feature: gifts.id, enabled: true }]);
  assert.equal(opened.author, GRACE);
  assert.equal((await sdkFlags()).gift_cards.enabled, false);

  // She may approve others' requests, but not her own: the button says why, the API agrees.
  const approve = g.getByRole('button', { name: 'Approve' });
  await within(3000, async () => (await reasonFor(g, approve)).includes('someone else'));
  assert.ok(await approve.isDisabled());
  assert.match(await reasonFor(g, approve), /You opened this request: someone else must approve it/);
  const commitOwn = g.getByRole('button', { name: 'Commit' });
  assert.ok(await commitOwn.isDisabled());
  assert.match(await reasonFor(g, commitOwn), /needs 1 approval first; it has 0/);
  const selfApproval = await g.evaluate(async (crId) => {
    const { csrf_token } = await (await fetch('/api/v1/auth/session/')).json();
    const r = await fetch(`/api/v1/change-requests/${crId}/approve/`, { method: 'POST', headers: { 'X-CSRF-Token': csrf_token } });
    return r.status;
  }, id);
  assert.equal(selfApproval, 403);
  assert.deepEqual((await server.api('GET', `/change-requests/${id}/`)).approvals, []);

  // The administrator finds it in the list (0 of 1 approvals), approves it and commits it.
  await admin.goto(`${server.base}${prod()}/change-requests`);
  const row = admin.getByRole('row', { name: /Launch gift cards/ });
  await row.waitFor();
  assert.match(await row.innerText(), /0 of 1/);
  assert.match(await row.innerText(), /waiting for approval/);
  assert.match(await row.innerText(), new RegExp(GRACE));
  await admin.getByRole('link', { name: 'Launch gift cards' }).click();
  await admin.getByRole('button', { name: 'Approve' }).click();
  await admin.getByRole('heading', { name: 'Approvals: 1 of 1' }).waitFor();
  assert.match(await admin.getByRole('region', { name: 'Approvals: 1 of 1' }).innerText(), new RegExp(ADMIN_EMAIL));
  const commit = admin.getByRole('button', { name: 'Commit' });
  await within(3000, async () => !(await commit.isDisabled()));
  await commit.click();
  await admin.getByRole('heading', { name: 'State: committed' }).waitFor();
  const seen = await within(3000, async () => (await sdkFlags()).gift_cards.enabled === true);
  console.log(`# SDKs saw the committed change ${Math.round(seen.ms)} ms after the commit was shown`);
  const done = await server.api('GET', `/change-requests/${id}/`);
  assert.equal(done.status, 'committed');
  assert.equal(done.committed_by, ADMIN_EMAIL);

  // Committed, it leaves the open list and appears under "Committed".
  await admin.goto(`${server.base}${prod()}/change-requests`);
  await admin.getByText('No open change requests').waitFor();
  await admin.getByLabel('Show').selectOption('true');
  assert.match(await admin.getByRole('row', { name: /Launch gift cards/ }).innerText(), /committed/);

  await g.context().close();
  await admin.context().close();
});

test('a stale change request is refused at commit with the reason in words, and closed after a confirmation', async () => {
  const dark = demo.features.dark_mode;
  const { id } = await server.api('POST', `/environments/${demo.prod.api_key}/create-change-request/`, {
    title: 'Dark mode for everyone',
    feature_states: [{ feature: dark.id, enabled: true }],
  });
  const admin = await signedInPage(browser, server);
  await admin.goto(`${server.base}${prod()}/change-requests/${id}`);
  await admin.getByRole('button', { name: 'Approve' }).click();
  await admin.getByRole('heading', { name: 'Approvals: 1 of 1' }).waitFor();
  const commit = admin.getByRole('button', { name: 'Commit' });
  await within(3000, async () => !(await commit.isDisabled()));

  // Meanwhile someone switches dark_mode directly (an administrator may): the request is stale.
  const state = await stateOf(dark);
  assert.equal(state.enabled, false);
  await server.api('PATCH', `/environments/${demo.prod.api_key}/featurestates/${state.id}/`, { enabled: true, feature_state_value: 'night' });
  const conflict = admin.waitForResponse((r) => r.url().endsWith(`/change-requests/${id}/commit/`));
  await commit.click();
  assert.equal((await conflict).status(), 409);
  const alert = admin.getByRole('alert').filter({ hasText: 'changed since it was opened' });
  await alert.waitFor();
  assert.match(await alert.innerText(), /close it and open a new one against the current state/);
  assert.equal((await server.api('GET', `/change-requests/${id}/`)).status, 'open');
  assert.equal((await stateOf(dark)).feature_state_value, 'night');

  // Read again, the page shows it out of date, and Commit is disabled with the reason.
  await admin.reload();
  await admin.getByRole('heading', { name: /State: out of date/ }).waitFor();
  assert.ok(await admin.getByRole('button', { name: 'Commit' }).isDisabled());
  assert.match(await reasonFor(admin, admin.getByRole('button', { name: 'Commit' })), /changed since it was opened/);

  // Closing asks first; kept open, nothing happens; confirmed, it is closed.
  await admin.getByRole('button', { name: 'Close request' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Close this change request?' });
  await dialog.getByRole('button', { name: 'Keep it open' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await server.api('GET', `/change-requests/${id}/`)).status, 'open');
  await admin.getByRole('button', { name: 'Close request' }).click();
  await dialog.getByRole('button', { name: 'Close the request' }).click();
  await admin.waitForURL((u) => u.pathname.endsWith('/change-requests'));
  await admin.getByText('No open change requests').waitFor();
  const closed = await server.api('GET', `/change-requests/${id}/`);
  assert.equal(closed.status, 'closed');
  assert.equal((await stateOf(dark)).feature_state_value, 'night');
  await admin.context().close();
});

test('a change request of segment overrides shows each override change and its assigned approver, who approves it', async () => {
  const checkout = demo.features.checkout_v2;
  const { beta, eu } = demo.segments;
  // Opened through the API, naming Grace as the approver: the Beta testers override gets a new
  // value and the EU customers override goes.
  const cr = await server.api('POST', `/environments/${demo.prod.api_key}/create-change-request/`, {
    title: 'New beta flow, no EU override',
    feature_states: [
      { feature: checkout.id, feature_segment: { segment: beta.id }, feature_state_value: 'beta-flow-2' },
      { feature: checkout.id, feature_segment: { segment: eu.id }, delete_override: true },
    ],
    approvals: [{ user: grace.id }],
  });
  const assigned = await server.api('GET', `/environments/${demo.prod.api_key}/list-change-requests/?assignee=${grace.id}&committed=false`);
  assert.deepEqual(
    assigned.results.map((c) => c.id),
    [cr.id],
  );

  const g = await signedInPage(browser, server, { width: 1280, height: 900 }, GRACE, PASSWORD);
  await g.goto(`${server.base}${prod()}/change-requests/${cr.id}`);
  const changes = g.getByRole('region', { name: 'What committing it now changes in Production' });
  await changes.getByText(/override for “Beta testers”/).waitFor();
  const text = await changes.innerText();
  assert.match(text, /checkout_v2, override for “Beta testers” — Value: beta-flow → beta-flow-2/);
  assert.match(text, /checkout_v2, override for “EU customers” — deleted: off/);
  // Grace is assigned and has not approved yet: that is no approval.
  const waiting = g.getByRole('region', { name: 'Approvals: 0 of 1' });
  await waiting.waitFor();
  assert.match(await waiting.innerText(), /grace@acme\.example — assigned, not approved yet/);

  // She approves it: her assignment is filled in, and she commits it.
  await g.getByRole('button', { name: 'Approve' }).click();
  const approvals = g.getByRole('region', { name: 'Approvals: 1 of 1' });
  await approvals.waitFor();
  assert.match(await approvals.innerText(), /grace@acme\.example approved on .* \(assigned\)/);
  const commit = g.getByRole('button', { name: 'Commit' });
  await within(3000, async () => !(await commit.isDisabled()));
  await commit.click();
  await g.getByRole('heading', { name: 'State: committed' }).waitFor();
  const overrides = await server.api('GET', `/environments/${demo.prod.api_key}/segment-overrides/?feature=${checkout.id}`);
  assert.deepEqual(
    overrides.results.map((o) => [o.segment, o.feature_state_value]),
    [[beta.id, 'beta-flow-2']],
  );
  // Committed, the page lists what it set, overrides by segment.
  const set = await g.getByRole('region', { name: 'What it sets' }).innerText();
  assert.match(set, /checkout_v2: override for “EU customers”: delete it/);
  await g.context().close();
});
