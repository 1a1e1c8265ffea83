// End-to-end: the pages for what happens to a flag over time — its history and restore, changes
// scheduled for later (and cancelled), webhooks with their delivery log, and flag usage —
// driven in headless Chromium against a real `flagstone serve`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { launchBrowser, startServer, within } from './harness.mjs';
import { seedDemo } from './seed.mjs';
import { bootstrapAdmin, signedInPage } from './session.mjs';

let server;
let browser;
let demo;

before(async () => {
  server = await startServer({
    // The test's webhook receiver listens on 127.0.0.1; usage is flushed every second.
    FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE: 'true',
    FLAGSTONE_EDGE_USAGE_FLUSH_SECONDS: '1',
  });
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

/** A `datetime-local` input's value for `ms` (the browser and this process share the zone). */
function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

test('history: see what a version changed, restore an earlier one, and SDKs get it', async () => {
  const feature = demo.features.search_provider;
  const state = await stateOf(demo.prod, feature);
  await server.api('PATCH', `/environments/${demo.prod.api_key}/featurestates/${state.id}/`, { feature_state_value: 'algolia' });
  await server.api('PATCH', `/environments/${demo.prod.api_key}/featurestates/${state.id}/`, { feature_state_value: 'typesense' });
  const versions = async () => (await server.api('GET', `/environments/${demo.prod.api_key}/features/${feature.id}/versions/`)).results;
  const [latest, algolia] = await versions();

  const page = await signedInPage(browser, server);
  await page.goto(`${server.base}${envPath(demo.prod)}/features/${feature.id}`);
  const history = page.getByRole('region', { name: 'History in Production' });
  await history.getByRole('button', { name: `Changes in version ${latest.id}` }).click();
  const changes = page.getByRole('dialog', { name: `Version ${latest.id} of search_provider` });
  await changes.getByText(/Value in the environment default: algolia → typesense/).waitFor();
  assert.match(await changes.innerText(), /Change by the installation's admin key/);
  await changes.getByRole('button', { name: 'Close', exact: true }).first().click();

  // The newest version is the current configuration: it has no Restore button.
  assert.equal(await history.getByRole('button', { name: `Restore version ${latest.id}` }).count(), 0);
  await history.getByRole('button', { name: `Restore version ${algolia.id}` }).click();
  const confirm = page.getByRole('dialog', { name: `Restore version ${algolia.id}?` });
  await confirm.getByText('algolia').waitFor();
  // Cancelling changes nothing.
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await versions()).length, 3);
  await history.getByRole('button', { name: `Restore version ${algolia.id}` }).click();
  await page.getByRole('dialog', { name: `Restore version ${algolia.id}?` }).getByRole('button', { name: `Restore version ${algolia.id}` }).click();

  const seen = await within(2000, async () => (await sdkFlags(demo.prod)).search_provider.feature_state_value === 'algolia');
  console.log(`# restore -> GET /api/v1/flags/ shows it: ${seen.ms.toFixed(0)} ms`);
  const [restored] = await versions();
  assert.equal(restored.kind, 'restore');
  assert.equal(restored.restored_from, algolia.id);
  assert.equal(restored.author, 'ada@acme.example');
  // The page shows the restored state and the new version at the top of the history.
  await history.getByRole('button', { name: `Changes in version ${restored.id}` }).waitFor();
  await within(3000, async () => (await page.getByLabel('Value', { exact: true }).first().inputValue()) === 'algolia');
  await page.context().close();
});

test('schedule a change from the feature page, see it listed, cancel it: nothing changes', async () => {
  const feature = demo.features.gift_cards;
  const before = await stateOf(demo.prod, feature);
  const page = await signedInPage(browser, server);
  await page.goto(`${server.base}${envPath(demo.prod)}/features/${feature.id}`);
  const stateCard = page.locator('form.card').first();
  await stateCard.getByRole('switch', { name: 'gift_cards' }).click();
  await stateCard.getByLabel('Later, at a set time').check();
  // A time in the past is refused before anything is sent.
  await stateCard.getByLabel('Date and time').fill(localInput(Date.now() - 3_600_000));
  await stateCard.getByText('Choose a time in the future.').waitFor();
  assert.ok(await stateCard.getByRole('button', { name: 'Schedule change' }).isDisabled());
  const at = Date.now() + 2 * 86_400_000;
  await stateCard.getByLabel('Date and time').fill(localInput(at));
  await stateCard.getByRole('button', { name: 'Schedule change' }).click();

  const pendingCard = page.getByRole('region', { name: 'Scheduled in Production' });
  await pendingCard.getByRole('cell', { name: /^turn on/ }).first().waitFor();
  const pending = (await server.api('GET', `/environments/${demo.prod.api_key}/scheduled-changes/?state=pending`)).results;
  assert.equal(pending.length, 1);
  assert.equal(pending[0].feature_states[0].feature, feature.id);
  assert.equal(pending[0].feature_states[0].enabled, true);
  assert.equal(pending[0].author, 'ada@acme.example');
  // To the minute the person chose.
  assert.equal(Math.floor(Date.parse(pending[0].live_from) / 60_000), Math.floor(at / 60_000));
  // Nothing changed yet.
  assert.equal((await stateOf(demo.prod, feature)).enabled, before.enabled);
  assert.equal((await sdkFlags(demo.prod)).gift_cards.enabled, before.enabled);

  // The environment's Scheduled changes page lists it; cancel it there.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Scheduled changes' }).click();
  await page.getByRole('heading', { name: 'Scheduled changes' }).waitFor();
  const row = page.getByRole('row').filter({ hasText: 'gift_cards' });
  await row.getByText('turn on').waitFor();
  await row.getByRole('button', { name: /^Cancel the change of gift_cards/ }).click();
  await page.getByRole('dialog', { name: 'Cancel this scheduled change?' }).getByRole('button', { name: 'Cancel the change' }).click();
  await page.getByText('Nothing is scheduled').waitFor();
  const cancelled = await server.api('GET', `/environments/${demo.prod.api_key}/scheduled-changes/${pending[0].id}/`);
  assert.equal(cancelled.state, 'cancelled');
  assert.equal(cancelled.cancelled_by, 'ada@acme.example');
  await page.getByLabel('Show').selectOption('cancelled');
  await page.getByRole('row').filter({ hasText: 'gift_cards' }).locator('.chip:visible', { hasText: 'cancelled' }).waitFor();
  assert.equal((await stateOf(demo.prod, feature)).enabled, before.enabled);
  await page.context().close();
});

test('webhooks: add one (secret shown once), send a test event, see it delivered and signed, redeliver, delete', async () => {
  const received = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${receiver.address().port}/flags`;
  try {
    const page = await signedInPage(browser, server);
    await page.goto(`${server.base}${envPath(demo.dev)}/features`);
    // The environment's Webhooks link (the organisation has one too, and under load the
    // environment's section of the navigation may not be there yet when the first is taken).
    await page.getByRole('navigation', { name: 'Main' }).locator(`a[href="${envPath(demo.dev)}/webhooks"]`).click();
    await page.getByRole('heading', { name: 'Webhooks' }).waitFor();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a webhook to Development' });
    await dialog.getByLabel('Address (URL)').fill('ftp://example.com/x');
    await dialog.getByRole('button', { name: 'Add webhook' }).click();
    // The API's refusal sits under the URL field.
    const urlField = dialog.getByLabel('Address (URL)');
    await within(3000, async () => (await urlField.getAttribute('aria-invalid')) === 'true');
    await urlField.fill(url);
    const secret = await dialog.getByLabel('Signing secret').inputValue();
    assert.match(secret, /^[0-9a-f]{64}$/);
    await dialog.getByRole('button', { name: 'Add webhook' }).click();
    const shown = page.getByRole('dialog', { name: 'Keep the signing secret' });
    assert.equal(await shown.getByLabel('Signing secret').innerText(), secret);
    await shown.getByRole('button', { name: 'I have stored it' }).click();
    // Afterwards the API only says that there is one.
    const [hook] = await server.api('GET', `/environments/${demo.dev.api_key}/webhooks/`);
    assert.equal(hook.secret, '********');
    assert.equal(hook.url, url);

    await page.getByRole('link', { name: url }).click();
    await page.getByRole('heading', { name: 'Deliveries' }).waitFor();
    await page.getByRole('button', { name: 'Send test event' }).click();
    const delivered = page.getByRole('row').filter({ hasText: 'delivered' });
    await delivered.first().waitFor({ timeout: 10000 });
    await delivered.getByText('HTTP 200').first().waitFor();
    const test = received.find((r) => JSON.parse(r.body).data?.test === true);
    assert.ok(test, 'the receiver got the test event');
    const expected = createHmac('sha256', secret).update(test.body).digest('hex');
    assert.equal(test.headers['x-flagsmith-signature'], expected);

    const eventId = test.headers['x-flagstone-event-id'];
    const count = received.length;
    await page.getByRole('button', { name: `Redeliver FLAG_UPDATED ${eventId}` }).click();
    await within(10000, async () => received.length > count);
    assert.equal(received.at(-1).headers['x-flagstone-event-id'], eventId);

    // Edit it: opt in to publish events; the secret, left empty, stays what it was.
    await page.getByRole('link', { name: /Webhooks of Development/ }).click();
    await page.getByRole('button', { name: `Edit the webhook ${url}` }).click();
    const edit = page.getByRole('dialog', { name: 'Edit webhook' });
    assert.equal(await edit.getByLabel('New signing secret').inputValue(), '');
    await edit.getByLabel(/Each publish to SDKs/).check();
    await edit.getByRole('button', { name: 'Save webhook' }).click();
    await page.getByText('+ environment published').waitFor();
    const [edited] = await server.api('GET', `/environments/${demo.dev.api_key}/webhooks/`);
    assert.deepEqual(edited.events, ['ENVIRONMENT_PUBLISHED']);
    assert.equal(edited.secret, '********');
    const before = received.length;
    await server.api('POST', `/environments/${demo.dev.api_key}/webhooks/${hook.id}/test/`, {});
    await within(10000, async () => received.length > before);
    assert.equal(received.at(-1).headers['x-flagsmith-signature'], createHmac('sha256', secret).update(received.at(-1).body).digest('hex'));

    // Pause it, then delete it.
    const sw = page.getByRole('switch', { name: `Send to ${url}` });
    await sw.click();
    await within(3000, async () => (await server.api('GET', `/environments/${demo.dev.api_key}/webhooks/`))[0].enabled === false);
    await page.getByRole('button', { name: `Delete the webhook ${url}` }).click();
    await page.getByRole('dialog', { name: 'Delete this webhook?' }).getByRole('button', { name: 'Delete webhook' }).click();
    await page.getByText('No webhooks yet').waitFor();
    assert.deepEqual(await server.api('GET', `/environments/${demo.dev.api_key}/webhooks/`), []);

    // The organisation has its own webhooks page.
    await page.goto(`${server.base}/organisations/${demo.org.id}/webhooks`);
    await page.getByRole('heading', { name: 'Webhooks' }).waitFor();
    await page.getByText(/every audit log entry/).waitFor();
    await page.context().close();
  } finally {
    receiver.close();
  }
});

test('flag usage: last evaluated on the features table and the feature page, a chart, the stale filter', async () => {
  const page = await signedInPage(browser, server);
  await page.goto(`${server.base}${envPath(demo.dev)}/features`);
  const row = page.getByRole('row').filter({ has: page.getByRole('switch', { name: 'new_onboarding' }) });
  await row.getByText('never').waitFor();
  // SDKs ask for the flags; the edge counts what it served and flushes every second here.
  for (let i = 0; i < 5; i++) await sdkFlags(demo.dev);
  const usagePath = `/projects/${demo.project.id}/features/${demo.features.new_onboarding.id}/evaluation-data/?environment_id=${demo.dev.id}`;
  await within(5000, async () => (await server.api('GET', usagePath)).reduce((a, d) => a + d.count, 0) === 5);
  await page.reload();
  await row.getByText(/just now|s ago/).waitFor();

  await page.goto(`${server.base}${envPath(demo.dev)}/features/${demo.features.new_onboarding.id}`);
  const usage = page.getByRole('region', { name: 'Usage in Development' });
  await usage.getByText(/Last evaluated: (just now|\d+ s ago)/).waitFor();
  await usage.getByText(/\b5 evaluations in the last 30 days/).waitFor();
  const chart = usage.getByRole('img', { name: /Evaluations per day of new_onboarding: Served by Flagstone 5, Reported by SDKs 0/ });
  await chart.waitFor();
  await usage.getByLabel('Period').selectOption('7');
  await usage.getByText(/in the last 7 days/).waitFor();

  // Every feature here is new (younger than the 30 days "unused" needs), so none is stale.
  await page.goto(`${server.base}${envPath(demo.dev)}/features`);
  const asked = page.waitForRequest((r) => r.url().includes('stale=true'));
  await page.getByLabel(/^Only stale/).check();
  await asked;
  await page.getByText('No stale features').waitFor();
  await page.context().close();
});
