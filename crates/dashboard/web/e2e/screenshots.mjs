// Screenshots of the main pages at desktop and phone width, for docs/screenshots/ (the README
// shows them). Not a test: `npm run screenshots` after a UI change, then look at every image.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { launchBrowser, startServer } from './harness.mjs';
import { seedDemo } from './seed.mjs';
import { bootstrapAdmin, signedInPage } from './session.mjs';

const OUT = process.env.OUT || resolve(import.meta.dirname, '../../../../docs/screenshots');
mkdirSync(OUT, { recursive: true });
const server = await startServer();
const browser = await launchBrowser();
try {
  await bootstrapAdmin(server);
  const demo = await seedDemo(server.api);
  const p = demo.project.id;
  const env = `/projects/${p}/environments/${demo.prod.api_key}`;
  const pages = [
    ['features', `${env}/features`],
    ['feature', `${env}/features/${demo.features.checkout_v2.id}`],
    ['segment', `/projects/${p}/segments/${demo.segments.beta.id}`],
    ['identity', `${env}/identities/${demo.identities.ada.id}`],
    ['audit', `/projects/${p}/audit`],
    ['environment-settings', `${env}/settings`],
    ['pipeline', `/projects/${p}/pipeline`],
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
      await page.screenshot({ path: join(OUT, `${name}-${tag}.png`) });
      if (name === 'pipeline') await server.api('PATCH', `/projects/${p}/`, { limits: { max_document_bytes: 33554432 } });
    }
    await page.context().close();
  }
  console.log(`screenshots in ${OUT}`);
} finally {
  await browser.close();
  await server.stop();
}
