// Test harness for the Parse JS SDK conformance suite.
//
// `useServer()` (call it once at the top of a test file) registers node:test `before`/`after`
// hooks that start a fresh Parlor server for that file and point the Parse SDK singleton at it.
// node --test runs every file in its own process, so each file gets its own server and SDK.
//
// Environment:
//   PARLOR_BIN              server binary (default: <repo>/target/debug/parlor)
//   PARLOR_SDK_TARGET_URL   use an already running server (e.g. the real Parse Server) instead of
//                           spawning one, e.g. http://127.0.0.1:1337/parse
//   PARLOR_SDK_APP_ID       app id for PARLOR_SDK_TARGET_URL (default: sdk-test)
//   PARLOR_SDK_MASTER_KEY   master key for PARLOR_SDK_TARGET_URL (default: sdk-master)
//   PARLOR_SDK_SERVER_LOG   when set, the spawned server's stderr is echoed live

import { after, before } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const require = createRequire(import.meta.url);
/** The official Parse JS SDK (Node build). */
export const Parse = require('parse/node');

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
const STARTUP_TIMEOUT_MS = 20_000;

/** Options object that makes an SDK call use the master key. */
export const MASTER = Object.freeze({ useMasterKey: true });

/** A class name unique to this process, so runs against a shared server never collide. */
export function uniqueClass(base) {
  return `${base}_${randomBytes(4).toString('hex')}`;
}

/** Resolves to a TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function healthOk(url) {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    if (res.status !== 200) return false;
    const body = await res.json();
    return body && body.status === 'ok';
  } catch {
    return false;
  }
}

/**
 * Spawns `parlor serve` on a free loopback port with a fresh SQLite database in a new temp
 * directory and waits for /parse/health. Returns a handle with `stop()`.
 */
/**
 * The PostgreSQL URL the spawned servers use, or null for SQLite: `PARLOR_SDK_DATABASE`, or
 * `PARLOR_TEST_POSTGRES_URL` when `PARLOR_TEST_BACKEND=postgres`.
 */
export function postgresUrl() {
  if (process.env.PARLOR_SDK_DATABASE) return process.env.PARLOR_SDK_DATABASE;
  if (process.env.PARLOR_TEST_BACKEND === 'postgres') {
    if (!process.env.PARLOR_TEST_POSTGRES_URL) {
      throw new Error('PARLOR_TEST_BACKEND=postgres needs PARLOR_TEST_POSTGRES_URL');
    }
    return process.env.PARLOR_TEST_POSTGRES_URL;
  }
  return null;
}

// Each server gets its own schema, named after its folder so that a restart on a kept folder
// finds its data again.
function schemaFor(dir) {
  return 'sdk_' + path.basename(dir).toLowerCase().replace(/[^a-z0-9]/g, '_');
}

function dropSchema(pgUrl, schema) {
  spawnSync('psql', [pgUrl.split('?')[0], '-q', '-c', `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: 'ignore' });
}

export async function spawnServer({ appId = 'sdk-test', masterKey = 'sdk-master', dir: keptDir, port: fixedPort, extraArgs = [] } = {}) {
  const bin = process.env.PARLOR_BIN || path.join(REPO_ROOT, 'target', 'debug', 'parlor');
  if (!existsSync(bin)) {
    throw new Error(`server binary not found: ${bin} (build it with: cargo build -p parlor_server --bin parlor, or set PARLOR_BIN)`);
  }
  // A caller-provided folder outlives the server (a restart reuses its database).
  const dir = keptDir || mkdtempSync(path.join(tmpdir(), 'parlor-sdk-'));
  const port = fixedPort || await freePort();
  const pgUrl = postgresUrl();
  const schema = pgUrl && schemaFor(dir);
  const database = pgUrl
    ? `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}schema=${schema}`
    : `sqlite://${path.join(dir, 'parlor.db')}`;
  const args = [
    'serve',
    '--host', '127.0.0.1',
    '--port', String(port),
    '--database', database,
    '--app-id', appId,
    '--master-key', masterKey,
    ...extraArgs,
  ];
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  const echo = !!process.env.PARLOR_SDK_SERVER_LOG;
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    if (echo) process.stderr.write(d);
  });
  child.stdout.on('data', (d) => {
    stdout += d;
    if (stdout.length > 200_000) stdout = stdout.slice(-100_000);
  });
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.on('error', (err) => {
      exited = { code: null, signal: null, err };
      resolve(exited);
    });
  });

  // Safety net: never leave a server behind if this test process dies without running `after`.
  const killOnExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const url = `http://127.0.0.1:${port}/parse`;
  const cleanupDir = () => {
    if (keptDir) return;
    rmSync(dir, { recursive: true, force: true });
    if (pgUrl) dropSchema(pgUrl, schema);
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const done = await Promise.race([exitPromise, sleep(5000).then(() => null)]);
      if (!done) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    cleanupDir();
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      cleanupDir();
      throw new Error(
        `parlor exited during startup (${JSON.stringify(exited.err ? String(exited.err) : exited)})\n` +
          `command: ${bin} ${args.join(' ')}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`,
      );
    }
    if (await healthOk(url)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `parlor did not answer GET ${url}/health with 200 {"status":"ok"} within ${STARTUP_TIMEOUT_MS / 1000}s\n` +
          `command: ${bin} ${args.join(' ')}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`,
      );
    }
    await sleep(100);
  }
  return { url, port, appId, masterKey, stop, stderr: () => stderr, pid: child.pid };
}

/**
 * Registers before/after hooks that start (or attach to) a server and initialize the SDK.
 * Returns an object whose fields (url, appId, masterKey, external, rest) are filled in by `before`.
 * `setup(ctx)` (optional, async) runs inside the same hook once the SDK is initialized: put a
 * file's fixtures there rather than in a separate top-level `before` (node:test may start root
 * hooks concurrently, so a second hook could run before the SDK is initialized). Use its `ctx`
 * argument, not the returned object: the hook may start before `useServer` has returned.
 */
export function useServer(setup) {
  const ctx = {};
  let handle = null;
  before(async () => {
    if (process.env.PARLOR_SDK_TARGET_URL) {
      ctx.url = process.env.PARLOR_SDK_TARGET_URL.replace(/\/$/, '');
      ctx.appId = process.env.PARLOR_SDK_APP_ID || 'sdk-test';
      ctx.masterKey = process.env.PARLOR_SDK_MASTER_KEY || 'sdk-master';
      ctx.external = true;
    } else {
      handle = await spawnServer();
      Object.assign(ctx, { url: handle.url, appId: handle.appId, masterKey: handle.masterKey, external: false });
    }
    Parse.initialize(ctx.appId, undefined, ctx.masterKey);
    Parse.serverURL = ctx.url;
    // A 5xx must fail the test at once instead of being retried 5 times with backoff.
    Parse.CoreManager.set('REQUEST_ATTEMPT_LIMIT', 1);
    ctx.rest = (method, p, opts) => rest(ctx, method, p, opts);
    if (setup) await setup(ctx);
  }, { timeout: STARTUP_TIMEOUT_MS + 60_000 });
  after(async () => {
    if (handle) await handle.stop();
  });
  return ctx;
}

/**
 * Raw REST call with X-Parse-* headers. `p` is relative to the mount path ("/classes/X").
 * Returns { status, headers, json, text }.
 */
export async function rest(ctx, method, p, { body, master = false, sessionToken, headers = {}, appId = ctx.appId } = {}) {
  const h = { ...headers };
  if (appId) h['X-Parse-Application-Id'] = appId;
  if (master) h['X-Parse-Master-Key'] = ctx.masterKey;
  if (sessionToken) h['X-Parse-Session-Token'] = sessionToken;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
  }
  const res = await fetch(ctx.url + p, { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/**
 * Asserts that `promise` rejects with a Parse.Error of the given code; returns the error.
 */
export async function expectParseError(promise, code, assert) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected Parse.Error ${code}, but the call succeeded`);
  assert.ok(err instanceof Parse.Error, `expected a Parse.Error, got ${err && err.constructor && err.constructor.name}: ${err}`);
  assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
  return err;
}

/** Creates a class through the schemas API with the master key. `fields`: {name: {type,...}}. */
export async function createClass(className, fields = {}) {
  const schema = new Parse.Schema(className);
  for (const [name, def] of Object.entries(fields)) {
    const { type, ...options } = def;
    schema.addField(name, type, options);
  }
  await schema.save();
  return schema;
}

export { sleep };
