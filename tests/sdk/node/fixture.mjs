// What the Node suites share: the server, started and seeded by ../flagstone_server.py serve
// (it prints the fixture as one JSON line and stops the server when its stdin closes), a way
// to change a flag through the admin API, and bounded polling.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Starts and seeds the server; resolves to `{ fx, stop }` (`fx`: the fixture it printed). */
export async function startServer() {
  const helper = spawn('python3', [path.join(here, '..', 'flagstone_server.py'), 'serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: helper.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    helper.once('exit', (code) => reject(new Error(`server helper exited with ${code}`)));
  });
  const fx = JSON.parse(first);
  if (fx.error) throw new Error(`server helper: ${fx.error}`);
  const stop = async () => {
    if (helper.exitCode === null) {
      const exited = new Promise((r) => helper.once('exit', r));
      helper.stdin.end();
      await exited;
    }
  };
  return { fx, stop };
}

export function unique(prefix) {
  return `${prefix}-${Math.random().toString(16).slice(2, 12)}`;
}

/** Sets a feature's value and state in the fixture's environment through the admin API. */
export async function setState(fx, feature, value, enabled = true) {
  const id = fx.features[feature].state_id;
  const r = await fetch(`${fx.api_url}environments/${fx.client_key}/featurestates/${id}/`, {
    method: 'PATCH',
    headers: { Authorization: `Api-Key ${fx.admin_key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ feature_state_value: value, enabled }),
  });
  assert.equal(r.status, 200, await r.text());
}

/** Calls `check` until it is true or `timeoutMs` passes; returns its last answer. */
export async function poll(check, timeoutMs, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok || Date.now() >= deadline) return ok;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
