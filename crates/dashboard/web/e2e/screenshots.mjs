// Screenshots of the main pages at desktop and phone width, for docs/screenshots/ (the README
// shows them). Not a test: `npm run screenshots` after a UI change, then look at every image.
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { launchBrowser, startServer } from './harness.mjs';
import { seedChangeRequests, seedChanges, seedDemo, seedPeople } from './seed.mjs';
import { bootstrapAdmin, signedInPage } from './session.mjs';

const OUT = process.env.OUT || resolve(import.meta.dirname, '../../../../docs/screenshots');
mkdirSync(OUT, { recursive: true });
const server = await startServer({ FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE: 'true', FLAGSTONE_EDGE_USAGE_FLUSH_SECONDS: '1' });
const browser = await launchBrowser();
// A webhook receiver that takes everything except changes to maintenance_banner (410: gone).
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => res.writeHead(body.includes('maintenance_banner') ? 410 : 200).end());
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
try {
  await bootstrapAdmin(server);
  const demo = await seedDemo(server.api);
  const p = demo.project.id;
  const env = `/projects/${p}/environments/${demo.prod.api_key}`;
  await seedChanges(server.api, demo);
  const people = await seedPeople(server.base, server.api, demo);
  const hook = await server.api('POST', `/environments/${demo.prod.api_key}/webhooks/`, {
    url: `http://127.0.0.1:${receiver.address().port}/flags`, secret: 'a-long-random-secret-for-signing', events: ['ENVIRONMENT_PUBLISHED'],
  });
  await server.api('POST', `/organisations/${demo.org.id}/webhooks/`, { url: `http://127.0.0.1:${receiver.address().port}/audit`, secret: '' });
  const stateOf = async (f) => (await server.api('GET', `/environments/${demo.prod.api_key}/featurestates/?feature=${f.id}`)).results[0];
  await server.api('POST', `/environments/${demo.prod.api_key}/webhooks/${hook.id}/test/`, {});
  await server.api('PATCH', `/environments/${demo.prod.api_key}/featurestates/${(await stateOf(demo.features.maintenance_banner)).id}/`, { enabled: true });
  await server.api('PATCH', `/environments/${demo.prod.api_key}/featurestates/${(await stateOf(demo.features.new_onboarding)).id}/`, { enabled: false });
  // SDKs ask for the flags (counted as served) and report their own evaluations.
  for (let i = 0; i < 40; i++) await fetch(`${server.base}/api/v1/flags/`, { headers: { 'X-Environment-Key': demo.prod.api_key } });
  await fetch(`${server.base}/api/v1/analytics/flags/`, {
    method: 'POST', headers: { 'X-Environment-Key': demo.prod.api_key, 'Content-Type': 'application/json' }, body: JSON.stringify({ search_provider: 25 }),
  });
  // Last: from here on Production requires approvals.
  const requests = await seedChangeRequests(server.base, server.api, demo, people);
  await new Promise((r) => setTimeout(r, 2500));
  const pages = [
    ['features', `${env}/features`],
    ['feature', `${env}/features/${demo.features.checkout_v2.id}`],
    ['segment', `/projects/${p}/segments/${demo.segments.beta.id}`],
    ['identity', `${env}/identities/${demo.identities.ada.id}`],
    ['audit', `/projects/${p}/audit`],
    ['environment-settings', `${env}/settings`],
    ['pipeline', `/projects/${p}/pipeline`],
    ['members', `/organisations/${demo.org.id}/members`],
    ['invites', `/organisations/${demo.org.id}/invites`],
    ['groups', `/organisations/${demo.org.id}/groups`],
    ['history', `${env}/features/${demo.features.search_provider.id}`],
    ['usage', `${env}/features/${demo.features.search_provider.id}`],
    ['schedule', `${env}/features/${demo.features.gift_cards.id}`],
    ['scheduled-changes', `${env}/scheduled-changes`],
    ['change-requests', `${env}/change-requests`],
    ['change-request', `${env}/change-requests/${requests.gifts.id}`],
    ['webhooks', `${env}/webhooks`],
    ['webhook-deliveries', `${env}/webhooks/${hook.id}`],
  ];
  const sizes = [['desktop', { width: 1280, height: 860 }], ['phone', { width: 390, height: 844 }]];
  for (const [tag, viewport] of sizes) {
    const ctx = await browser.newContext({ viewport });
    const page = await ctx.newPage();
    await page.goto(`${server.base}/login`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.screenshot({ path: join(OUT, `sign-in-${tag}.png`) });
    await ctx.close();
  }
  for (const [tag, viewport] of sizes) {
    const page = await signedInPage(browser, server, viewport);
    for (const [name, path] of pages) {
      if (name === 'pipeline') {
        // Show a parked publish: a document budget Development cannot fit, then a change.
        await server.api('PATCH', `/projects/${p}/?force=true`, { limits: { max_document_bytes: 300 } });
        await server.api('PATCH', `/environments/${demo.dev.api_key}/`, { name: 'Development' });
        await new Promise((r) => setTimeout(r, 800));
      }
      await page.goto(server.base + path);
      await page.waitForLoadState('networkidle');
      await page.waitForTimeout(name === 'pipeline' ? 6500 : 300);
      const file = join(OUT, `${name}-${tag}.png`);
      if (name === 'history') {
        // The history card, then one version's changes.
        const card = page.getByRole('region', { name: /^History in/ });
        await card.screenshot({ path: file });
        await card.getByRole('button', { name: /^Changes in version/ }).first().click();
        const dialog = page.getByRole('dialog');
        await dialog.getByRole('heading', { name: 'The configuration after it' }).waitFor();
        await dialog.screenshot({ path: join(OUT, `version-${tag}.png`) });
        continue;
      }
      if (name === 'usage') {
        const card = page.getByRole('region', { name: /^Usage in/ });
        await card.getByRole('img').waitFor();
        await card.screenshot({ path: file });
        continue;
      }
      if (name === 'schedule') {
        await page.getByRole('switch', { name: 'gift_cards' }).first().click();
        await page.getByLabel('Later, at a set time').check();
        const at = new Date(Date.now() + 7 * 86_400_000);
        const pad = (n) => String(n).padStart(2, '0');
        await page.getByLabel('Date and time').fill(`${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T09:00`);
        await page.getByRole('button', { name: 'Schedule change' }).scrollIntoViewIfNeeded();
      }
      await page.screenshot({ path: file, fullPage: name === 'change-request' });
      if (name === 'pipeline') await server.api('PATCH', `/projects/${p}/`, { limits: { max_document_bytes: 33554432 } });
    }
    await page.context().close();
  }
  // Requesting a change, as Grace sees Production (it requires approvals; she is no admin).
  for (const [tag, viewport] of sizes) {
    const page = await signedInPage(browser, server, viewport, 'grace@acme.example', 'a long enough password');
    await page.goto(`${server.base}${env}/features/${demo.features.dark_mode.id}`);
    await page.getByRole('button', { name: 'Request this change' }).waitFor();
    await page.getByRole('switch', { name: 'dark_mode' }).click();
    await page.getByLabel('Title', { exact: true }).fill('Dark mode for everyone');
    await page.getByLabel('Description (optional)').fill('Feedback from the beta was positive.');
    await page.locator('form.card').first().screenshot({ path: join(OUT, `request-change-${tag}.png`) });
    await page.context().close();
  }
  console.log(`screenshots in ${OUT}`);
} finally {
  receiver.close();
  await browser.close();
  await server.stop();
}
