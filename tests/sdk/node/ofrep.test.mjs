// OpenFeature's OFREP providers against a real `flagstone serve`:
// - @openfeature/ofrep-provider (server: one POST /ofrep/v1/evaluate/flags/{key} per evaluation)
//   on @openfeature/server-sdk;
// - @openfeature/ofrep-web-provider (web: one bulk POST /ofrep/v1/evaluate/flags per context,
//   re-polled with If-None-Match) on @openfeature/web-sdk. It runs here under Node with its
//   global fetch; the only browser API it touches, localStorage, is given an in-memory shim.
//
// The server is started and seeded by ../flagstone_server.py serve (see sdk.test.mjs).
// Run: node --test --test-reporter=tap ofrep.test.mjs   (FLAGSTONE_BIN picks the binary)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { poll, setState, startServer, unique } from './fixture.mjs';
import { OpenFeature as ServerOpenFeature } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

// The web provider persists its flag cache in localStorage (a browser global).
if (typeof globalThis.localStorage === 'undefined') {
  const items = new Map();
  globalThis.localStorage = {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
    clear: () => items.clear(),
    key: (i) => [...items.keys()][i] ?? null,
    get length() {
      return items.size;
    },
  };
}

const BANNER = 'banner';
const CHECKOUT = 'checkout_v2';
const MAX_ITEMS = 'max_items';
const COLOR = 'color';
const PREMIUM = 'premium_feature';
const LIVE = 'live_toggle';
const SERVER_ONLY = 'server_only';
const MV_IDENTIFIERS = Array.from({ length: 80 }, (_, i) => `mv-user-${i}`);

let stop;
let fx;

before(async () => {
  ({ fx, stop } = await startServer());
});

after(async () => {
  await WebOpenFeature.close();
  await ServerOpenFeature.close();
  if (stop) await stop();
});

function serverClient(domain, key, headers) {
  ServerOpenFeature.setProvider(
    domain,
    new OFREPProvider({ baseUrl: fx.url, headers: headers ?? [['Authorization', `Bearer ${key}`]] }),
  );
  return ServerOpenFeature.getClient(domain);
}

describe('server provider (@openfeature/ofrep-provider)', () => {
  test('values, reasons and variants for an identity with traits', async () => {
    const c = serverClient('server-values', fx.client_key);
    const ctx = { targetingKey: unique('node-ofrep') };
    const banner = await c.getStringDetails(BANNER, 'x', ctx);
    assert.equal(banner.value, 'hello');
    assert.equal(banner.reason, 'STATIC');
    assert.equal(banner.variant, 'default');
    assert.equal(await c.getNumberValue(MAX_ITEMS, 0, ctx), 10);
    const checkout = await c.getBooleanDetails(CHECKOUT, true, ctx);
    assert.equal(checkout.value, false);
    assert.equal(checkout.reason, 'DISABLED');
    const premium = await c.getStringDetails(PREMIUM, 'x', { ...ctx, plan: 'premium' });
    assert.equal(premium.value, 'premium');
    assert.equal(premium.reason, 'TARGETING_MATCH');
    assert.equal(premium.flagMetadata.segment, 'premium users');
    const vip = await c.getStringDetails(BANNER, 'x', { targetingKey: fx.vip_identifier });
    assert.equal(vip.value, 'vip banner');
    assert.equal(vip.flagMetadata.identityOverride, true);
  });

  test('the split agrees with the identities endpoint and names the variant', async () => {
    const c = serverClient('server-split', fx.client_key);
    const seen = new Set();
    for (const id of MV_IDENTIFIERS.slice(0, 24)) {
      const d = await c.getStringDetails(COLOR, 'x', { targetingKey: id });
      assert.equal(d.reason, 'SPLIT');
      assert.equal(d.variant, fx.color_variants[d.value]);
      const r = await fetch(`${fx.api_url}identities/?identifier=${id}&transient=true`, {
        headers: { 'X-Environment-Key': fx.client_key },
      });
      const flag = (await r.json()).flags.find((f) => f.feature.name === COLOR);
      assert.equal(d.value, flag.feature_state_value, id);
      seen.add(d.value);
    }
    assert.deepEqual([...seen].sort(), ['blue', 'red']);
  });

  test('errors arrive as OpenFeature error codes with the default value', async () => {
    const c = serverClient('server-errors', fx.client_key);
    const ctx = { targetingKey: unique('node-ofrep') };
    const missing = await c.getStringDetails('no_such_flag', 'fallback', ctx);
    assert.equal(missing.value, 'fallback');
    assert.equal(missing.errorCode, 'FLAG_NOT_FOUND');
    const hidden = await c.getStringDetails(SERVER_ONLY, 'fallback', ctx);
    assert.equal(hidden.errorCode, 'FLAG_NOT_FOUND');
    const anonymous = await c.getStringDetails(COLOR, 'fallback', { plan: 'premium' });
    assert.equal(anonymous.errorCode, 'TARGETING_KEY_MISSING');
    assert.equal(await c.getNumberValue(MAX_ITEMS, 0, {}), 10);
    const mismatch = await c.getNumberDetails(BANNER, 0, ctx);
    assert.equal(mismatch.errorCode, 'TYPE_MISMATCH');
    const bad = await c.getStringDetails(BANNER, 'fallback', { targetingKey: 7 });
    assert.equal(bad.errorCode, 'INVALID_CONTEXT');
  });

  test('a server key in Flagsmith\'s header sees server-only flags; unknown keys fail', async () => {
    const server = serverClient('server-key', fx.server_key, [['X-Environment-Key', fx.server_key]]);
    assert.equal(await server.getStringValue(SERVER_ONLY, 'x', { targetingKey: 'k' }), 'secret');
    const unknown = serverClient('server-unknown', 'not-a-key');
    const refused = await unknown.getStringDetails(BANNER, 'fallback', { targetingKey: 'k' });
    assert.equal(refused.value, 'fallback');
    assert.equal(refused.errorCode, 'GENERAL');
  });
});

describe('web provider (@openfeature/ofrep-web-provider)', () => {
  test('bulk evaluation, context changes, and polling with If-None-Match', async () => {
    const statuses = [];
    const recordingFetch = async (req, init) => {
      const res = await fetch(req, init);
      statuses.push({ status: res.status, ifNoneMatch: req.headers.get('if-none-match') });
      return res;
    };
    const provider = new OFREPWebProvider({
      baseUrl: fx.url,
      headers: [['Authorization', `Bearer ${fx.client_key}`]],
      pollInterval: 100,
      fetchImplementation: recordingFetch,
    });
    const domain = 'web';
    await WebOpenFeature.setContext(domain, { targetingKey: unique('web'), plan: 'premium' });
    await WebOpenFeature.setProviderAndWait(domain, provider);
    const c = WebOpenFeature.getClient(domain);

    assert.equal(c.getStringValue(BANNER, 'x'), 'hello');
    const premium = c.getStringDetails(PREMIUM, 'x');
    assert.equal(premium.value, 'premium');
    assert.equal(premium.reason, 'TARGETING_MATCH');
    assert.equal(c.getBooleanValue(CHECKOUT, true), false);
    assert.equal(c.getNumberValue(MAX_ITEMS, 0), 10);
    assert.equal(c.getStringDetails('no_such_flag', 'fallback').errorCode, 'FLAG_NOT_FOUND');
    assert.equal(c.getStringDetails(SERVER_ONLY, 'fallback').errorCode, 'FLAG_NOT_FOUND');

    // Unchanged flags: the polls are answered 304 against the ETag of the first answer.
    assert.ok(
      await poll(() => statuses.some((s) => s.status === 304 && s.ifNoneMatch), 5000),
      JSON.stringify(statuses),
    );

    // A change made through the admin API reaches the client through polling.
    const changed = new Promise((resolve) => c.addHandler(ProviderEvents.ConfigurationChanged, resolve));
    const value = unique('live');
    await setState(fx, LIVE, value);
    assert.ok(await poll(() => c.getStringValue(LIVE, 'x') === value, 10000), 'the change arrived');
    await changed;

    // A new context: the identity's override.
    await WebOpenFeature.setContext(domain, { targetingKey: fx.vip_identifier });
    assert.equal(c.getStringValue(BANNER, 'x'), 'vip banner');

    // No targeting key: targeted flags answer TARGETING_KEY_MISSING, the others their value.
    await WebOpenFeature.setContext(domain, {});
    assert.equal(c.getStringDetails(COLOR, 'fallback').errorCode, 'TARGETING_KEY_MISSING');
    assert.equal(c.getNumberValue(MAX_ITEMS, 0), 10);
    await WebOpenFeature.clearProviders();
  });
});
