// Every main page, checked as a screen reader and a keyboard see it: each input, select and
// text area has a visible label tied to it, each button an accessible name, each flag switch
// is named after its feature, and a flag can be switched from the keyboard alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, within } from './harness.mjs';
import { seedChangeRequests, seedChanges, seedDemo, seedPeople } from './seed.mjs';
import { bootstrapAdmin, signedInPage } from './session.mjs';

let server;
let browser;
let demo;

before(async () => {
  server = await startServer({ FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE: 'true' });
  browser = await launchBrowser();
  await bootstrapAdmin(server);
  demo = await seedDemo(server.api);
  demo.extras = await seedChanges(server.api, demo);
  // Change requests last: from here on Production requires approvals.
  demo.people = await seedPeople(server.base, server.api, demo);
  demo.requests = await seedChangeRequests(server.base, server.api, demo, demo.people);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Controls without a visible label, and buttons without a name, on the current page. */
function problems() {
  const out = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (!visible(el) || el.type === 'hidden') continue;
    const labels = [...(el.labels || [])].filter((l) => visible(l) && l.textContent.trim());
    if (labels.length === 0) out.push(`unlabelled ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 80)}`);
  }
  for (const b of document.querySelectorAll('button, [role="switch"], a[href]')) {
    if (!visible(b)) continue;
    const name = (b.getAttribute('aria-label') || b.textContent || '').trim();
    if (!name) out.push(`nameless ${b.outerHTML.slice(0, 80)}`);
  }
  return out;
}

test('every page: visible labels on every control, a name on every button', async () => {
  const p = demo.project.id;
  const env = `/projects/${p}/environments/${demo.prod.api_key}`;
  const pages = [
    `${env}/features`,
    `${env}/features/${demo.features.recommendations.id}`,
    `${env}/identities`,
    `${env}/identities/${demo.identities.ada.id}`,
    `${env}/settings`,
    `/projects/${p}/segments`,
    `/projects/${p}/segments/${demo.segments.beta.id}`,
    `/projects/${p}/segments/new`,
    `/projects/${p}/audit`,
    `/projects/${p}/pipeline`,
    `/projects/${p}/settings`,
    `${env}/scheduled-changes`,
    `${env}/change-requests`,
    `${env}/change-requests/${demo.requests.gifts.id}`,
    `${env}/change-requests/${demo.requests.search.id}`,
    `${env}/webhooks`,
    `${env}/webhooks/${demo.extras.webhook.id}`,
    `/organisations/${demo.org.id}/webhooks`,
    `/organisations/${demo.org.id}/members`,
    `/organisations/${demo.org.id}/invites`,
    `/organisations/${demo.org.id}/groups`,
    `/organisations/${demo.org.id}/api-keys`,
    '/projects',
    '/account',
  ];
  // Pages added with history, schedules, change requests, webhooks and usage must also fit a
  // phone's width.
  const fitPhone = pages.filter((x) => /scheduled|change-requests|webhooks|organisations|features\/|environments\/[^/]+\/settings/.test(x));
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    const page = await signedInPage(browser, server, viewport);
    for (const path of pages) {
      await page.goto(server.base + path);
      await page.locator('h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      assert.deepEqual(await page.evaluate(problems), [], `${path} at ${viewport.width}px`);
      if (viewport.width < 500 && fitPhone.includes(path)) {
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${path} is ${overflow}px wider than a phone`);
      }
    }
    await page.context().close();
  }
  const visitor = await (await browser.newContext()).newPage();
  for (const path of ['/login', '/signup']) {
    await visitor.goto(server.base + path);
    await visitor.locator('h1').waitFor();
    assert.deepEqual(await visitor.evaluate(problems), [], path);
  }
  await visitor.context().close();
});

test('a flag can be switched with the keyboard alone', async () => {
  const page = await signedInPage(browser, server);
  await page.goto(`${server.base}/projects/${demo.project.id}/environments/${demo.dev.api_key}/features`);
  const sw = page.getByRole('switch', { name: 'search_provider' });
  await sw.waitFor();
  await page.waitForLoadState('networkidle');
  const before = await sw.getAttribute('aria-checked');
  // Tab from the search box until the switch has focus, then press Space.
  await page.getByLabel('Search features').focus();
  for (let i = 0; i < 60 && !(await sw.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
  assert.ok(await sw.evaluate((el) => el === document.activeElement), 'the switch is reachable with Tab');
  // The switch flips at once; the change is saved by a PATCH. Wait for that response rather
  // than for the page to look idle, which can come before the request is even sent.
  const saved = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes('/featurestates/'));
  await page.keyboard.press('Space');
  await within(5000, async () => (await sw.getAttribute('aria-checked')) !== before);
  assert.ok((await saved).ok(), 'the change was saved');
  const state = (await server.api('GET', `/environments/${demo.dev.api_key}/featurestates/?feature=${demo.features.search_provider.id}`)).results[0];
  assert.equal(String(state.enabled), before === 'true' ? 'false' : 'true');
  await page.context().close();
});

test('the dialogs of history, scheduling and webhooks: labelled controls, named buttons', async () => {
  const p = demo.project.id;
  const env = `/projects/${p}/environments/${demo.prod.api_key}`;
  const page = await signedInPage(browser, server);
  const check = async (what) => assert.deepEqual(await page.evaluate(problems), [], what);
  await page.goto(`${server.base}${env}/features/${demo.features.search_provider.id}`);
  const history = page.getByRole('region', { name: 'History in Production' });
  await history.getByRole('button', { name: /^Changes in version/ }).first().click();
  await page.getByRole('dialog').getByRole('heading', { name: /What changed|The configuration after it/ }).first().waitFor();
  await check('version dialog');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await history.getByRole('button', { name: /^Restore version/ }).first().click();
  await page.getByRole('dialog').getByRole('button', { name: /^Restore version/ }).waitFor();
  await check('restore dialog');
  await page.keyboard.press('Escape');
  await page.getByLabel('Later, at a set time').check();
  await page.getByLabel('Date and time').waitFor();
  await check('scheduling a change');

  await page.goto(`${server.base}${env}/webhooks`);
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await page.getByRole('dialog').getByLabel('Address (URL)').waitFor();
  await check('add webhook dialog');
  await page.context().close();
});

test('a scheduled change can be cancelled with the keyboard alone', async () => {
  const page = await signedInPage(browser, server);
  await page.goto(`${server.base}/projects/${demo.project.id}/environments/${demo.prod.api_key}/scheduled-changes`);
  const cancel = page.getByRole('button', { name: /^Cancel the change of dark_mode/ });
  await cancel.waitFor();
  await page.getByLabel('Show').focus();
  for (let i = 0; i < 20 && !(await cancel.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
  assert.ok(await cancel.evaluate((el) => el === document.activeElement), 'the Cancel button is reachable with Tab');
  await page.keyboard.press('Enter');
  const confirm = page.getByRole('dialog', { name: 'Cancel this scheduled change?' }).getByRole('button', { name: 'Cancel the change' });
  await confirm.focus();
  await page.keyboard.press('Enter');
  await page.getByText('Nothing is scheduled').waitFor();
  const [change] = (await server.api('GET', `/environments/${demo.prod.api_key}/scheduled-changes/`)).results;
  assert.equal(change.state, 'cancelled');
  await page.context().close();
});

test('requesting a change, and closing a request: labelled controls, named buttons, phone width', async () => {
  const env = `/projects/${demo.project.id}/environments/${demo.prod.api_key}`;
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    // Grace is no administrator of Production, which requires approvals: she requests changes.
    const page = await signedInPage(browser, server, viewport, 'grace@acme.example', 'a long enough password');
    const check = async (what) => {
      assert.deepEqual(await page.evaluate(problems), [], `${what} at ${viewport.width}px`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${what} is ${overflow}px wider than the screen`);
    };
    await page.goto(`${server.base}${env}/features/${demo.features.dark_mode.id}`);
    await page.getByRole('button', { name: 'Request this change' }).waitFor();
    await page.getByLabel('Later, at a set time').check();
    await page.getByLabel('Date and time').waitFor();
    await check('the change request form');
    await page.goto(`${server.base}${env}/features`);
    await page.getByRole('switch', { name: 'dark_mode' }).waitFor();
    await check('features that go through change requests');
    await page.goto(`${server.base}${env}/change-requests/${demo.requests.shipping.id}`);
    await page.getByRole('button', { name: 'Close request' }).click();
    await page.getByRole('dialog', { name: 'Close this change request?' }).waitFor();
    await check('the close dialog');
    await page.keyboard.press('Escape');
    await page.context().close();
  }
});
