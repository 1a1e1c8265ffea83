// Test harness: a real `flagstone serve` on a temporary SQLite database and a free port, and
// Debian's Chromium driven by playwright-core. FLAGSTONE_BIN names the binary (default: the
// workspace's debug build).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../../../..');
export const BIN = process.env.FLAGSTONE_BIN || join(ROOT, 'target/debug/flagstone');
export const ADMIN_KEY = 'e2e-admin-key-0123456789abcdef';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/**
 * Starts `flagstone serve`; resolves when it answers. `stop()` ends it and removes its files.
 * `env` adds settings (e.g. `FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE` for a receiver on 127.0.0.1).
 */
export async function startServer(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'flagstone-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(BIN, ['serve'], {
    env: {
      ...process.env,
      FLAGSTONE_BIND: `127.0.0.1:${port}`,
      FLAGSTONE_DATABASE_URL: `sqlite://${join(dir, 'flagstone.db')}`,
      FLAGSTONE_EDGE_CACHE_DIR: join(dir, 'cache'),
      FLAGSTONE_ADMIN_KEY: ADMIN_KEY,
      FLAGSTONE_PUBLISH_DEBOUNCE_MS: '20',
      FLAGSTONE_EDGE_POLL_MS: '200',
      // Parked builds log errors by design; E2E_SERVER_LOG=warn shows the server's log.
      RUST_LOG: process.env.E2E_SERVER_LOG || 'off',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let exited = null;
  child.on('exit', (code) => (exited = code));
  for (let i = 0; i < 300; i++) {
    if (exited !== null) throw new Error(`flagstone serve exited with ${exited}`);
    try {
      if ((await fetch(`${base}/health/liveness`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async (method, path, body, headers = {}) => {
    const r = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { Authorization: `Api-Key ${ADMIN_KEY}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    base,
    api,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (exited !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the value and the time taken. */
export async function within(ms, fn) {
  const start = performance.now();
  for (;;) {
    const v = await fn();
    if (v) return { value: v, ms: performance.now() - start };
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
