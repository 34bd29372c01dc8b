// The official Parse Dashboard (the `parse-dashboard` npm package, unchanged) against Parlor,
// in headless chromium: it lists the classes with their counts, shows a class's columns with
// their types (the schema), edits a cell, creates a class, runs a cloud function from its
// API console and creates a config parameter; each change is checked through Parlor's REST
// API. The dashboard runs on a free port in development mode (no dashboard users).

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, freePort } from '../sdk/harness.mjs';
import { launch, screenshot } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DASHBOARD_BIN = path.join(HERE, 'node_modules', '.bin', 'parse-dashboard');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = mkdtempSync(path.join(tmpdir(), 'parlor-dashboard-'));
let server;
let dashboard;
let dashboardLog = '';
let browser;
let page;
let base;
const errors = [];

async function rest(method, p, body) {
  const response = await fetch(server.url + p, {
    method,
    headers: { 'X-Parse-Application-Id': server.appId, 'X-Parse-Master-Key': server.masterKey, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json().catch(() => null) };
}

async function startDashboard(port) {
  dashboard = spawn(process.execPath, [DASHBOARD_BIN,
    '--dev', '--host', '127.0.0.1', '--port', String(port),
    '--appId', server.appId, '--masterKey', server.masterKey, '--serverURL', server.url,
    '--graphQLServerURL', server.url.replace(/\/parse$/, '/graphql'), '--appName', 'Parlor'], { stdio: ['ignore', 'pipe', 'pipe'] });
  dashboard.stdout.on('data', (data) => { dashboardLog += data; });
  dashboard.stderr.on('data', (data) => { dashboardLog += data; });
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  throw new Error(`parse-dashboard did not start:\n${dashboardLog}`);
}

let sessionId;

test.before(async () => {
  server = await spawnServer({ dir, port: await freePort() });
  await rest('POST', '/classes/Note', { text: 'first note', n: 1 });
  await rest('POST', '/classes/Note', { text: 'second note', n: 2 });
  const session = await rest('POST', '/classes/ChatSession', { title: 'Dashboard session', participants: [] });
  sessionId = session.json.objectId;
  const port = await freePort();
  await startDashboard(port);
  base = `http://127.0.0.1:${port}/apps/Parlor`;
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (error) => errors.push(error.message));
});

test.after(async () => {
  await browser?.close();
  dashboard?.kill();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function step(t, name, body) {
  return t.test(name, async () => {
    try {
      await body();
    } catch (error) {
      await screenshot(page, `dashboard-failed-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`).catch(() => {});
      throw error;
    }
  });
}

test('Parse Dashboard against Parlor', { timeout: 300_000 }, async (t) => {
  await step(t, 'the browser lists the classes with their counts', async () => {
    await page.goto(`${base}/browser/Note`);
    const sidebar = page.locator('a', { hasText: /^Note/ }).first();
    await sidebar.waitFor();
    for (const name of ['_User', 'ChatSession', 'Message', 'Persona', 'Context']) {
      await page.getByRole('link', { name: new RegExp(`^${name}`) }).first().waitFor();
    }
    await page.getByText('first note').waitFor();
    await page.getByText('second note').waitFor();
    await page.getByText('2 objects', { exact: false }).first().waitFor();
    await screenshot(page, 'dashboard-browser');
  });

  await step(t, 'a class shows its schema: columns with their types', async () => {
    await page.goto(`${base}/browser/Message`);
    // The column headers: each a name above its type.
    const headers = page.locator('div[draggable="true"]');
    await headers.filter({ hasText: 'content' }).first().waitFor();
    const columns = Object.fromEntries((await headers.allInnerTexts()).map((text) => {
      const [name, ...type] = text.split('\n').map((part) => part.trim()).filter(Boolean);
      return [name, type.join(' ')];
    }));
    assert.equal(columns.content, 'String');
    assert.match(columns.session, /^Pointer\s*<ChatSession>$/);
    assert.match(columns.persona, /^Pointer\s*<Persona>$/);
    assert.equal(columns.usage, 'Object');
    await screenshot(page, 'dashboard-schema');
  });

  await step(t, 'a cell edited in the browser is saved through the API', async () => {
    await page.goto(`${base}/browser/Note`);
    await page.getByText('first note').dblclick();
    await page.keyboard.press('Control+A');
    await page.keyboard.type('edited in the dashboard');
    await page.keyboard.press('Enter');
    await page.getByText('edited in the dashboard').waitFor();
    let stored;
    for (let attempt = 0; attempt < 50; attempt += 1) {
      stored = await rest('GET', `/classes/Note?where=${encodeURIComponent(JSON.stringify({ n: 1 }))}`);
      if (stored.json.results[0]?.text === 'edited in the dashboard') break;
      await sleep(100);
    }
    assert.equal(stored.json.results[0].text, 'edited in the dashboard');
  });

  await step(t, 'a class created in the dashboard is in the schema', async () => {
    await page.goto(`${base}/browser`);
    await page.getByText('Create a class', { exact: true }).first().click();
    const name = page.getByPlaceholder('Give it a good name...');
    await name.waitFor();
    await name.fill('DashboardMade');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/browser\/DashboardMade/);
    const schema = await rest('GET', '/schemas/DashboardMade');
    assert.equal(schema.status, 200, JSON.stringify(schema.json));
    assert.equal(schema.json.className, 'DashboardMade');
  });

  await step(t, 'a cloud function runs from the API console', async () => {
    await page.goto(`${base}/api_console`);
    await page.getByText('GET', { exact: true }).click();
    await page.getByText('POST', { exact: true }).click();
    await page.getByPlaceholder('classes/_User').fill('functions/searchContext');
    // The master-key switch: the field beside its label.
    await page.locator('xpath=//div[text()="Use Master Key?"]/ancestor::div[3]/div[2]/*[1]').click();
    await page.getByPlaceholder('{"name":"John"}').fill(JSON.stringify({ sessionId, query: 'nothing here' }));
    await page.getByText('Send Query', { exact: true }).click();
    // Parlor's answer `{"result": []}` (no message matches), shown in the results panel.
    await page.waitForFunction(() => /"result":\s*\[\]/.test(document.body.innerText));
    await screenshot(page, 'dashboard-api-console');
  });

  await step(t, 'a config parameter created in the dashboard is served by /config', async () => {
    await page.goto(`${base}/config`);
    await page.getByText('Create a parameter').first().click();
    await page.getByPlaceholder('New parameter').fill('welcome');
    await page.locator('textarea').first().fill('Hello from the dashboard');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByText('welcome', { exact: true }).waitFor();
    const config = await rest('GET', '/config');
    assert.equal(config.json.params.welcome, 'Hello from the dashboard');
    await screenshot(page, 'dashboard-config');
  });

  await t.test('no script errors', () => {
    assert.deepEqual(errors, []);
  });
});
