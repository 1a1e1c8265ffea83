// The unchanged flagsmith-nodejs SDK against a real `flagstone serve`: remote evaluation
// (client key) and local evaluation from the environment document (server key).
//
// The server is started and seeded by the shared helper (../flagstone_server.py serve), which
// prints the fixture as one JSON line and stops the server when its stdin closes.
// Run: node --test --test-reporter=tap sdk.test.mjs   (FLAGSTONE_BIN picks the binary)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { poll, setState, startServer, unique } from './fixture.mjs';
import { Flagsmith, DefaultFlag, FlagsmithAPIError } from 'flagsmith-nodejs';

const BANNER = 'banner';
const CHECKOUT = 'checkout_v2';
const MAX_ITEMS = 'max_items';
const COLOR = 'color';
const PREMIUM = 'premium_feature';
const LIVE = 'live_toggle';
const STABLE = [BANNER, CHECKOUT, MAX_ITEMS, COLOR, PREMIUM];
const MV_IDENTIFIERS = Array.from({ length: 80 }, (_, i) => `mv-user-${i}`);

let stop;
let fx; // the fixture printed by the helper
const clients = [];

// The SDK logs the failures the unknown-key tests provoke; keep the TAP output readable.
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
quiet.child = () => quiet;

function client(options = {}) {
  const c = new Flagsmith({
    environmentKey: fx.client_key,
    apiUrl: fx.api_url,
    requestTimeoutSeconds: 5,
    retries: 0,
    logger: process.env.FLAGSTONE_SDK_VERBOSE ? undefined : quiet,
    ...options,
  });
  clients.push(c);
  return c;
}

function localClient(options = {}) {
  return client({
    environmentKey: fx.server_key,
    enableLocalEvaluation: true,
    environmentRefreshIntervalSeconds: 3600,
    ...options,
  });
}

function snapshot(flags) {
  return Object.fromEntries(
    STABLE.map((name) => {
      const f = flags.getFlag(name);
      return [name, [f.enabled, f.value ?? null]];
    }),
  );
}

before(async () => {
  ({ fx, stop } = await startServer());
});

after(async () => {
  for (const c of clients) await c.close();
  if (stop) await stop();
});

describe('remote evaluation (client key)', () => {
  test('environment flags', async () => {
    const flags = await client().getEnvironmentFlags();
    assert.equal(flags.isFeatureEnabled(BANNER), true);
    assert.equal(flags.getFeatureValue(BANNER), 'hello');
    assert.equal(flags.isFeatureEnabled(CHECKOUT), false);
    assert.equal(flags.getFeatureValue(MAX_ITEMS), 10);
    assert.equal(flags.getFeatureValue(COLOR), 'grey');
    assert.equal(flags.isFeatureEnabled(PREMIUM), false);
    assert.equal(flags.getFeatureValue(PREMIUM), 'standard');
    const banner = flags.getFlag(BANNER);
    assert.equal(banner.featureId, fx.features[BANNER].id);
    assert.equal(banner.isDefault, false);
    assert.equal(flags.getFlag('no_such_feature').isDefault, true);
  });

  test('identity with traits matching the segment', async () => {
    const c = client();
    const premium = await c.getIdentityFlags(unique('premium'), { plan: 'premium' });
    assert.equal(premium.isFeatureEnabled(PREMIUM), true);
    assert.equal(premium.getFeatureValue(PREMIUM), 'premium');
    const free = await c.getIdentityFlags(unique('free'), { plan: 'free' });
    assert.equal(free.isFeatureEnabled(PREMIUM), false);
    assert.equal(free.getFeatureValue(PREMIUM), 'standard');
    // A transient trait is used for this evaluation only.
    const t = unique('transient');
    const once = await c.getIdentityFlags(t, { plan: { value: 'premium', transient: true } });
    assert.equal(once.getFeatureValue(PREMIUM), 'premium');
  });

  test('multivariate split', async () => {
    const c = client();
    const first = {};
    for (const id of MV_IDENTIFIERS) first[id] = (await c.getIdentityFlags(id)).getFeatureValue(COLOR);
    const values = new Set(Object.values(first));
    assert.deepEqual([...values].sort(), ['blue', 'red']);
    for (const id of MV_IDENTIFIERS.slice(0, 20)) {
      assert.equal((await c.getIdentityFlags(id)).getFeatureValue(COLOR), first[id], id);
    }
  });

  test('identity override', async () => {
    const flags = await client().getIdentityFlags(fx.vip_identifier);
    assert.equal(flags.isFeatureEnabled(BANNER), true);
    assert.equal(flags.getFeatureValue(BANNER), 'vip banner');
    assert.equal(flags.getFeatureValue(MAX_ITEMS), 10);
  });

  test('a change on the admin API is visible within a second', async () => {
    const c = client();
    const value = unique('node-remote');
    const started = Date.now();
    await setState(fx, LIVE, value);
    const seen = await poll(async () => (await c.getEnvironmentFlags()).getFeatureValue(LIVE) === value, 1000, 10);
    assert.ok(seen, `/flags/ did not serve ${value} within 1 s`);
    const idSeen = await poll(
      async () => (await c.getIdentityFlags(unique('live'))).getFeatureValue(LIVE) === value,
      1000,
      10,
    );
    assert.ok(idSeen);
    console.log(`# node remote propagation: ${Date.now() - started} ms`);
  });

  test('an unknown key gives the SDK error, or the default flag handler', async () => {
    const bad = client({ environmentKey: 'not-a-real-key' });
    // The SDK wraps the API error (a 403 here) in its own "... failed" error.
    const apiError = (err) => err.cause instanceof FlagsmithAPIError && /403/.test(err.cause.message);
    await assert.rejects(bad.getEnvironmentFlags(), apiError);
    await assert.rejects(bad.getIdentityFlags('someone', { plan: 'premium' }), apiError);
    const withDefault = client({
      environmentKey: 'not-a-real-key',
      defaultFlagHandler: (name) => new DefaultFlag(`default-${name}`, true),
    });
    const flag = (await withDefault.getEnvironmentFlags()).getFlag(BANNER);
    assert.equal(flag.isDefault, true);
    assert.equal(flag.value, `default-${BANNER}`);
    const idFlag = (await withDefault.getIdentityFlags('someone')).getFlag(BANNER);
    assert.equal(idFlag.isDefault, true);
  });
});

describe('local evaluation (server key, environment document)', () => {
  test('environment flags equal remote', async () => {
    const local = snapshot(await localClient().getEnvironmentFlags());
    const remote = snapshot(await client().getEnvironmentFlags());
    assert.deepEqual(local, remote);
    assert.deepEqual(local[BANNER], [true, 'hello']);
  });

  test('identity with traits equals remote', async () => {
    const l = localClient();
    const r = client();
    for (const traits of [{ plan: 'premium' }, { plan: 'free' }, {}]) {
      const id = unique('local');
      const local = snapshot(await l.getIdentityFlags(id, traits));
      const remote = snapshot(await r.getIdentityFlags(id, traits));
      assert.deepEqual(local, remote, JSON.stringify(traits));
      assert.equal(local[PREMIUM][1], traits.plan === 'premium' ? 'premium' : 'standard');
    }
    const segments = await l.getIdentitySegments(unique('seg'), { plan: 'premium' });
    assert.deepEqual(segments.map((s) => s.name), ['premium users']);
  });

  test('multivariate split equals remote', async () => {
    const l = localClient();
    const r = client();
    const mismatched = [];
    const values = new Set();
    for (const id of MV_IDENTIFIERS) {
      const local = (await l.getIdentityFlags(id)).getFeatureValue(COLOR);
      const remote = (await r.getIdentityFlags(id)).getFeatureValue(COLOR);
      values.add(local);
      if (local !== remote) mismatched.push([id, local, remote]);
    }
    assert.deepEqual(mismatched, []);
    assert.deepEqual([...values].sort(), ['blue', 'red']);
  });

  test('identity override from the document', async () => {
    const flags = await localClient().getIdentityFlags(fx.vip_identifier);
    assert.equal(flags.getFeatureValue(BANNER), 'vip banner');
  });

  test('a change on the admin API reaches a polling local client', async () => {
    const c = localClient({ environmentRefreshIntervalSeconds: 1 });
    await c.getEnvironmentFlags();
    const value = unique('node-local');
    await setState(fx, LIVE, value);
    const seen = await poll(async () => (await c.getEnvironmentFlags()).getFeatureValue(LIVE) === value, 5000, 50);
    assert.ok(seen, `local client did not see ${value} within 5 s`);
  });

  test('local evaluation with an unknown server key fails', async () => {
    const bad = localClient({ environmentKey: 'ser.not-a-real-key' });
    await assert.rejects(bad.getEnvironmentFlags());
  });
});
