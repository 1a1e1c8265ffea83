// Seeds a realistic project through the admin API (used by the screenshots and the tests).
// `call(method, path, body)` is an authenticated API call; returns what it created.
export async function seedDemo(call, organisationName = 'Acme') {
  const orgs = (await call('GET', '/organisations/')).results;
  const org = orgs.find((o) => o.name === organisationName) || (await call('POST', '/organisations/', { name: organisationName }));
  const project = await call('POST', '/projects/', { name: 'Web shop', organisation: org.id });
  const dev = await call('POST', '/environments/', { name: 'Development', project: project.id });
  const prod = await call('POST', '/environments/', { name: 'Production', project: project.id });
  const features = [
    ['checkout_v2', 'New one-page checkout', ['checkout'], true, null],
    ['dark_mode', 'Dark theme for the storefront', ['ui'], false, null],
    ['free_shipping_threshold', 'Order value above which shipping is free', ['checkout', 'pricing'], true, 50],
    ['search_provider', 'Which search backend answers queries', ['search'], true, 'elastic'],
    ['recommendations', 'Show "customers also bought"', ['experiment'], false, null],
    ['maintenance_banner', 'Banner shown during planned maintenance', ['ops'], false, 'We will be back at 02:00 UTC'],
    ['gift_cards', 'Sell and redeem gift cards', ['checkout'], false, null],
    ['new_onboarding', 'Guided tour for new accounts', ['experiment', 'ui'], true, null],
  ];
  // Tags are objects of the project; features carry their ids.
  const tagIds = {};
  for (const label of [...new Set(features.flatMap((f) => f[2]))]) {
    tagIds[label] = (await call('POST', `/projects/${project.id}/tags/`, { label, color: '#3d4db6' })).id;
  }
  const made = {};
  for (const [name, description, tags, enabled, value] of features) {
    made[name] = await call('POST', `/projects/${project.id}/features/`, {
      name, description, tags: tags.map((t) => tagIds[t]), default_enabled: enabled, initial_value: value,
    });
  }
  await call('POST', `/projects/${project.id}/features/${made.recommendations.id}/mv-options/`, { value: 'collaborative', key: 'collab', default_percentage_allocation: 30 });
  await call('POST', `/projects/${project.id}/features/${made.recommendations.id}/mv-options/`, { value: 'popular', key: 'popular', default_percentage_allocation: 30 });
  const beta = await call('POST', `/projects/${project.id}/segments/`, {
    name: 'Beta testers', description: 'People who opted in to early features',
    rules: [{ type: 'ALL', rules: [{ type: 'ANY', conditions: [
      { operator: 'EQUAL', property: 'plan', value: 'beta' },
      { operator: 'REGEX', property: 'email', value: '.*@acme\\.com' },
    ] }] }],
  });
  const eu = await call('POST', `/projects/${project.id}/segments/`, {
    name: 'EU customers', rules: [{ type: 'ALL', conditions: [{ operator: 'IN', property: 'country', value: 'de,fr,es,it,nl' }] }],
  });
  await call('POST', `/environments/${prod.api_key}/features/${made.checkout_v2.id}/create-segment-override/`, { segment: beta.id, enabled: true, feature_state_value: 'beta-flow' });
  await call('POST', `/environments/${prod.api_key}/features/${made.checkout_v2.id}/create-segment-override/`, { segment: eu.id, enabled: false });
  const ada = await call('POST', `/environments/${prod.api_key}/identities/`, { identifier: 'ada@acme.com' });
  await call('PUT', `/environments/${prod.api_key}/identities/${ada.id}/traits/`, [
    { trait_key: 'plan', trait_value: 'beta' }, { trait_key: 'country', trait_value: 'gb' }, { trait_key: 'orders', trait_value: 12 },
  ]);
  await call('POST', `/environments/${prod.api_key}/identities/${ada.id}/featurestates/`, { feature: made.dark_mode.id, enabled: true });
  for (const id of ['grace@example.org', 'linus@example.net', 'margaret@example.com']) {
    await call('POST', `/environments/${prod.api_key}/identities/`, { identifier: id });
  }
  return { org, project, dev, prod, features: made, segments: { beta, eu }, identities: { ada } };
}

/**
 * History, a scheduled change and a webhook on top of `seedDemo` (tests and screenshots of the
 * pages for changes over time). The webhook's receiver does not exist, so its log shows retries;
 * the server must allow private webhook addresses (FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE).
 */
export async function seedChanges(call, demo) {
  const key = demo.prod.api_key;
  const stateOf = async (feature) => (await call('GET', `/environments/${key}/featurestates/?feature=${feature.id}`)).results[0];
  const search = await stateOf(demo.features.search_provider);
  await call('PATCH', `/environments/${key}/featurestates/${search.id}/`, { feature_state_value: 'algolia' });
  await call('PATCH', `/environments/${key}/featurestates/${search.id}/`, { feature_state_value: 'typesense', enabled: true });
  const dark = await stateOf(demo.features.dark_mode);
  const monday = new Date(Date.now() + 3 * 86_400_000);
  monday.setUTCHours(9, 0, 0, 0);
  const scheduled = await call('PATCH', `/environments/${key}/featurestates/${dark.id}/`, { enabled: true, live_from: monday.toISOString() });
  const webhook = await call('POST', `/environments/${key}/webhooks/`, { url: 'http://127.0.0.1:9/flagstone-hook', secret: 'a-long-random-secret-for-signing' });
  await call('POST', `/environments/${key}/webhooks/${webhook.id}/test/`, { event_type: 'FLAG_UPDATED' });
  return { scheduled, webhook };
}

/**
 * People for the organisation pages: Grace (user, in the "Release managers" group, allowed to
 * change Development), Linus (administrator), and an invitation waiting for Margaret. Accounts
 * are made the way a person makes them: an invitation, then sign-up with its link's secret.
 */
export async function seedPeople(base, call, demo) {
  const group = await call('POST', `/organisations/${demo.org.id}/groups/`, { name: 'Release managers' });
  const made = {};
  for (const [email, first, last, role] of [
    ['grace@acme.example', 'Grace', 'Hopper', 'USER'],
    ['linus@acme.example', 'Linus', 'Torvalds', 'ADMIN'],
  ]) {
    const [sent] = await call('POST', `/organisations/${demo.org.id}/invite/`, { invites: [{ email, role, permission_groups: [] }] });
    const hash = decodeURIComponent(sent.join_url.split('/invite/')[1]);
    const r = await fetch(`${base}/api/v1/auth/users/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: 'a long enough password', first_name: first, last_name: last, invite_hash: hash }),
    });
    if (r.status !== 201) throw new Error(`sign-up of ${email}: ${r.status} ${await r.text()}`);
    made[first.toLowerCase()] = await r.json();
  }
  const users = await call('GET', `/organisations/${demo.org.id}/users/`);
  const grace = (Array.isArray(users) ? users : users.results).find((u) => u.email === 'grace@acme.example');
  await call('POST', `/organisations/${demo.org.id}/groups/${group.id}/add-users/`, { user_ids: [grace.id] });
  await call('POST', `/projects/${demo.project.id}/user-group-permissions/`, { group: group.id, permissions: ['VIEW_PROJECT'], admin: false });
  await call('POST', `/environments/${demo.dev.api_key}/user-group-permissions/`, { group: group.id, permissions: ['VIEW_ENVIRONMENT', 'UPDATE_FEATURE_STATE'], admin: false });
  await call('POST', `/environments/${demo.prod.api_key}/user-group-permissions/`, { group: group.id, permissions: ['VIEW_ENVIRONMENT'], admin: false });
  await call('POST', `/organisations/${demo.org.id}/invite/`, { invites: [{ email: 'margaret@acme.example', role: 'USER', permission_groups: [group.id] }] });
  return { group, grace };
}

/**
 * An API caller signed in as a person (the cookie session and its CSRF token), for requests
 * that must come from a user: change requests are authored and approved by people.
 */
export async function asUser(base, email, password = 'a long enough password') {
  const r = await fetch(`${base}/api/v1/auth/session/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!r.ok) throw new Error(`sign-in of ${email}: ${r.status} ${await r.text()}`);
  const { csrf_token: csrf } = await r.json();
  const cookie = r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return async (method, path, body) => {
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} as ${email}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/**
 * Change requests on top of `seedPeople`: Production needs 2 approvals; Grace (allowed to
 * request changes there) has one request waiting with Linus's approval, one scheduled for
 * Monday 09:00 without approvals, and one approved by Linus and the installation and committed.
 */
export async function seedChangeRequests(base, call, demo, people) {
  const key = demo.prod.api_key;
  await call('POST', `/environments/${key}/user-permissions/`, {
    user: people.grace.id, permissions: ['VIEW_ENVIRONMENT', 'UPDATE_FEATURE_STATE', 'CREATE_CHANGE_REQUEST'], admin: false,
  });
  await call('PATCH', `/environments/${key}/`, { minimum_change_request_approvals: 2 });
  const grace = await asUser(base, 'grace@acme.example');
  const linus = await asUser(base, 'linus@acme.example');
  const f = demo.features;
  const search = await grace('POST', `/environments/${key}/create-change-request/`, {
    title: 'Use the new search cluster', description: 'Load test passed at 3× peak traffic.',
    feature_states: [{ feature: f.search_provider.id, feature_state_value: 'opensearch' }],
  });
  await linus('POST', `/change-requests/${search.id}/approve/`);
  await call('POST', `/change-requests/${search.id}/approve/`);
  await grace('POST', `/change-requests/${search.id}/commit/`);
  const monday = new Date(Date.now() + 3 * 86_400_000);
  monday.setUTCHours(9, 0, 0, 0);
  const shipping = await grace('POST', `/environments/${key}/create-change-request/`, {
    title: 'Free shipping from 75 € on Monday', description: 'Agreed with finance for the spring campaign.',
    feature_states: [{ feature: f.free_shipping_threshold.id, feature_state_value: 75 }], live_from: monday.toISOString(),
  });
  const gifts = await grace('POST', `/environments/${key}/create-change-request/`, {
    title: 'Launch gift cards', description: 'Payments team has tested redemption end to end.\nRoll back by switching gift_cards off.',
    feature_states: [{ feature: f.gift_cards.id, enabled: true }],
  });
  await linus('POST', `/change-requests/${gifts.id}/approve/`);
  return { search, shipping, gifts };
}
