// Developer aid (not a test): screenshots of every page against a running server, signed in
// with an admin key sent as a header by the browser harness (never by the app).
// Usage: BASE=http://127.0.0.1:18100 ADMIN_KEY=… OUT=/tmp/shots node e2e/dev-screens.mjs
import { chromium } from 'playwright-core';
import { seedDemo } from './seed.mjs';

const BASE = process.env.BASE;
const KEY = process.env.ADMIN_KEY;
const OUT = process.env.OUT || '/tmp/shots';
const call = async (method, path, body) => {
  const r = await fetch(`${BASE}/api/v1${path}`, { method, headers: { Authorization: `Api-Key ${KEY}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
};
const seeded = process.env.SEED === '0' ? null : await seedDemo(call);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
for (const [tag, viewport] of [['desktop', { width: 1280, height: 860 }], ['phone', { width: 390, height: 844 }]]) {
  const ctx = await browser.newContext({ viewport, extraHTTPHeaders: { Authorization: `Api-Key ${KEY}` } });
  const page = await ctx.newPage();
  page.on('console', (m) => m.type() === 'error' && console.log('console:', m.text()));
  page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await page.route('**/api/v1/auth/session/', (route) => route.fulfill({ json: { user: { id: 1, email: 'ada@acme.com', first_name: 'Ada' }, csrf_token: 'x' } }));
  const p = seeded?.project.id ?? 1;
  const env = seeded?.prod.api_key;
  const pages = [
    ['features', `/projects/${p}/environments/${env}/features`],
    ['feature', `/projects/${p}/environments/${env}/features/${seeded?.features.checkout_v2.id}`],
    ['segment', `/projects/${p}/segments/${seeded?.segments.beta.id}`],
    ['identity', `/projects/${p}/environments/${env}/identities/${seeded?.identities.ada.id}`],
    ['audit', `/projects/${p}/audit`],
    ['pipeline', `/projects/${p}/pipeline`],
    ['env-settings', `/projects/${p}/environments/${env}/settings`],
    ['project-settings', `/projects/${p}/settings`],
    ['projects', `/projects`],
  ];
  for (const [name, path] of pages) {
    await page.goto(BASE + path);
    await page.waitForTimeout(name === 'pipeline' ? 4500 : 700);
    await page.screenshot({ path: `${OUT}/${name}-${tag}.png`, fullPage: tag === 'desktop' ? false : false });
  }
  await ctx.close();
}
await browser.close();
