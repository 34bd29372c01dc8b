// The console (`/console`) end to end in chromium: a user without the admin role is refused
// it (and the server refuses it the data), the master key signs in; the data browser's edit
// round trip (a bad value refused before and by the API, a good one saved), filters, pointer
// links, rows added and deleted; the ER diagram of the template's classes and the Mermaid
// source equal to `parlor schema`; REST and GraphQL calls from the playground as the master
// key, another user and anonymous; usage charts from real replies (fake streaming LLM) and a
// running reply cancelled; the Live screen with a chat client connected; an admin user's
// console. Screenshots of each screen go to target/e2e-screenshots (console-*.png).

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnServer, freePort } from '../sdk/harness.mjs';
import { startFakeLlm } from '../sdk/fake-llm.mjs';
import { launch, REPO_ROOT, screenshot, unnamedControls } from './browser.mjs';

const TOKENS = Array.from({ length: 30 }, (_, index) => (index === 0 ? 'Fine' : ` word${index}`));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = mkdtempSync(path.join(tmpdir(), 'parlor-console-'));
let server;
let fake;
let browser;
let base;
const pages = {};
const errors = [];

async function rest(method, p, body, { token, master } = {}) {
  const headers = { 'X-Parse-Application-Id': server.appId, 'Content-Type': 'application/json' };
  if (master) headers['X-Parse-Master-Key'] = server.masterKey;
  if (token) headers['X-Parse-Session-Token'] = token;
  const response = await fetch(server.url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, json: await response.json().catch(() => null) };
}

async function newPage(name, viewport = { width: 1400, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    // Refusals the console shows on purpose arrive as failed requests, not script errors.
    if (message.type() === 'error' && !/Failed to load resource|WebSocket/.test(message.text())) errors.push(`${name}: ${message.text()}`);
  });
  pages[name] = page;
  return page;
}

/** A screenshot without the toasts of earlier steps (they fade on their own). */
async function shot(page, name) {
  await page.evaluate(() => document.querySelector('.toasts')?.replaceChildren());
  await screenshot(page, name);
}

async function assertNamed(page, screen) {
  assert.deepEqual(await unnamedControls(page), [], `controls without an accessible name on ${screen}`);
}

const nav = (page) => page.getByRole('navigation', { name: 'Console' });
const people = {};
let sessionId;
let personaId;

test.before(async () => {
  // Slow enough that a reply can be seen running and cancelled (about 5 s each).
  fake = await startFakeLlm({ tokens: TOKENS, delayMs: 160 });
  server = await spawnServer({ dir, port: await freePort(), extraArgs: ['--llm-base-url', fake.baseUrl, '--llm-model', 'fake-model'] });
  base = `http://127.0.0.1:${new URL(server.url).port}`;
  for (const name of ['ada', 'bob']) {
    const created = await rest('POST', '/users', { username: name, password: 'secret-pass', displayName: name.toUpperCase() });
    people[name] = { id: created.json.objectId, token: created.json.sessionToken };
  }
  await rest('POST', '/classes/Note', { text: 'first', n: 1, owner: { __type: 'Pointer', className: '_User', objectId: people.bob.id } }, { master: true });
  await rest('POST', '/classes/Note', { text: 'second', n: 2 }, { master: true });
  await rest('POST', '/classes/Note', { text: 'third', n: 3 }, { master: true });
  const persona = await rest('POST', '/classes/Persona', { name: 'Sage' }, { master: true });
  personaId = persona.json.objectId;
  const session = await rest('POST', '/classes/ChatSession', { title: 'Usage', participants: [], personas: [{ __type: 'Pointer', className: 'Persona', objectId: personaId }] }, { token: people.bob.token });
  sessionId = session.json.objectId;
  // Two replies that finish: AiUsage rows and Messages for the usage screen.
  for (const content of ['Hello?', 'Still there?']) {
    const posted = await rest('POST', '/classes/Message', { session: { __type: 'Pointer', className: 'ChatSession', objectId: sessionId }, content }, { token: people.bob.token });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    const replyId = posted.json.replies[0];
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const reply = await rest('GET', `/classes/Message/${replyId}`, undefined, { master: true });
      if (reply.json.status === 'complete') break;
      await sleep(100);
    }
  }
  browser = await launch();
});

test.after(async () => {
  await browser?.close();
  await server?.stop();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

function step(t, name, body) {
  return t.test(name, async () => {
    try {
      await body();
    } catch (error) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      for (const [who, page] of Object.entries(pages)) {
        if (!page.isClosed()) await screenshot(page, `console-failed-${slug}-${who}`).catch(() => {});
      }
      throw error;
    }
  });
}

test('the console', { timeout: 600_000 }, async (t) => {
  await step(t, 'a user without the admin role is refused the console, and the server refuses it the data', async () => {
    const page = await newPage('bob');
    await page.goto(`${base}/console`);
    await page.getByRole('heading', { name: 'Parlor console' }).waitFor();
    await assertNamed(page, 'the sign-in page');
    await shot(page, 'console-sign-in');
    await page.getByLabel('Username').fill('bob');
    await page.getByLabel('Password').fill('secret-pass');
    await page.getByRole('button', { name: 'Log in as an admin' }).click();
    await page.getByRole('alert').filter({ hasText: 'not an admin' }).waitFor();
    assert.equal(await nav(page).count(), 0, 'no console screen is shown');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('parlor.console')), null, 'nothing is kept');
    // What the console would have read, asked directly with bob's own token.
    for (const p of ['/schemas', '/openapi.json', '/serverStatus', '/generations']) {
      const refused = await rest('GET', p, undefined, { token: people.bob.token });
      assert.equal(refused.status, 403, `${p}: ${JSON.stringify(refused.json)}`);
    }
    assert.equal((await rest('GET', '/classes/AiUsage', undefined, { token: people.bob.token })).json.code, 119);
    // A wrong master key is refused too.
    await page.getByLabel('Master key').fill('not-the-key');
    await page.getByRole('button', { name: 'Sign in with the master key' }).click();
    await page.getByRole('alert').filter({ hasText: 'refused that master key' }).waitFor();
  });

  await step(t, 'the master key signs in; every class with its row count', async () => {
    const page = await newPage('operator');
    await page.goto(`${base}/console`);
    await page.getByLabel('Master key').fill(server.masterKey);
    await page.getByRole('button', { name: 'Sign in with the master key' }).click();
    await nav(page).waitFor();
    assert.equal(JSON.parse(await page.evaluate(() => sessionStorage.getItem('parlor.console'))).masterKey, server.masterKey);
    assert.equal(await page.evaluate(() => localStorage.getItem('parlor.console')), null, 'the key is kept for the tab only');
    await page.goto(`${base}/console#/data/Note`);
    const classes = page.getByRole('navigation', { name: 'Classes and their rows' });
    await classes.getByRole('link', { name: /^Note\s*3 rows/ }).waitFor();
    await classes.getByRole('link', { name: /^Message\s*4 rows/ }).waitFor();
    await classes.getByRole('link', { name: /^_User\s*2 rows/ }).waitFor();
    await page.locator('tr[data-id]').nth(2).waitFor();
  });

  await step(t, 'data browser: an edit round trip, checked before and by the API', async () => {
    const page = pages.operator;
    const id = await page.locator('tr[data-id]').filter({ hasText: 'first' }).getAttribute('data-id');
    const row = page.locator(`tr[data-id="${id}"]`);
    // A number field refuses text before any request.
    await row.getByRole('button', { name: `Edit n of ${id}` }).click();
    await page.getByLabel('New value of n').fill('lots');
    await page.getByLabel('New value of n').press('Enter');
    await page.getByRole('alert').filter({ hasText: '"lots" is not a number' }).waitFor();
    await shot(page, 'console-data-edit');
    await page.getByLabel('New value of n').press('Escape');
    await row.getByRole('button', { name: `Edit text of ${id}` }).click();
    await page.getByLabel('New value of text').fill('edited in the console');
    await page.getByLabel('New value of text').press('Enter');
    await page.getByText('Saved text.').waitFor();
    await row.getByRole('button', { name: `Edit text of ${id}` }).filter({ hasText: 'edited in the console' }).waitFor();
    const stored = await rest('GET', `/classes/Note/${id}`, undefined, { master: true });
    assert.equal(stored.json.text, 'edited in the console');
    assert.equal(stored.json.n, 1, 'the refused value changed nothing');
    // Unsetting a value: an empty number deletes the field.
    await row.getByRole('button', { name: `Edit n of ${id}` }).click();
    await page.getByLabel('New value of n').fill('');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved n.').waitFor();
    assert.equal((await rest('GET', `/classes/Note/${id}`, undefined, { master: true })).json.n, undefined);
    await shot(page, 'console-data');
  });

  await step(t, 'data browser: sort, filter, follow a pointer, add and delete a row, add a column', async () => {
    const page = pages.operator;
    await page.goto(`${base}/console#/data/Note`);
    await page.locator('tr[data-id]').nth(2).waitFor();
    await page.getByRole('button', { name: /^Sort by text/ }).click();
    await page.getByRole('button', { name: /^Sort by text, ascending now/ }).waitFor();
    const texts = await page.locator('td[data-field="text"]').allInnerTexts();
    assert.deepEqual(texts.map((text) => text.trim()), ['edited in the console', 'second', 'third']);
    await page.getByRole('button', { name: 'Add filter' }).click();
    await page.getByLabel('Filter 1: field').selectOption('n');
    await page.getByLabel('Filter 1: operator').selectOption('$gte');
    await page.getByLabel('Filter 1: value').fill('3');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('Rows 1–1 of 1').waitFor();
    assert.deepEqual((await page.locator('td[data-field="text"]').allInnerTexts()).map((text) => text.trim()), ['third']);
    await assertNamed(page, 'the data browser with a filter');
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByText('Rows 1–3 of 3').waitFor();
    // The owner pointer leads to the user.
    await page.getByRole('link', { name: `Open _User ${people.bob.id}` }).click();
    await page.locator(`tr[data-id="${people.bob.id}"]`).waitFor();
    assert.equal(await page.locator('tr[data-id]').count(), 1);
    // The API's own refusal is shown as it is: a username that is taken (202).
    await page.getByRole('button', { name: `Edit username of ${people.bob.id}` }).click();
    await page.getByLabel('New value of username').fill('ada');
    await page.getByLabel('New value of username').press('Enter');
    await page.getByRole('alert').filter({ hasText: 'code 202' }).waitFor();
    await page.getByLabel('New value of username').press('Escape');
    assert.equal((await rest('GET', `/users/${people.bob.id}`, undefined, { master: true })).json.username, 'bob');
    // Add a row; the API's validation speaks through the dialog.
    await page.goto(`${base}/console#/data/Note`);
    await page.getByRole('button', { name: 'Add row' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a row to Note' });
    await dialog.getByLabel(/^owner/).fill('no such id!');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'objectId' }).waitFor();
    await dialog.getByLabel(/^owner/).fill('');
    await dialog.getByLabel(/^text/).fill('added in the console');
    await dialog.getByLabel(/^n /).fill('9');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByText('added in the console').waitFor();
    const added = await rest('GET', `/classes/Note?where=${encodeURIComponent(JSON.stringify({ n: 9 }))}`, undefined, { master: true });
    assert.equal(added.json.results[0].text, 'added in the console');
    // Delete it.
    const addedId = added.json.results[0].objectId;
    await page.getByRole('checkbox', { name: `Select row ${addedId}` }).check();
    await page.getByRole('button', { name: 'Delete 1 selected' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator(`tr[data-id="${addedId}"]`).waitFor({ state: 'detached' });
    assert.equal((await rest('GET', `/classes/Note/${addedId}`, undefined, { master: true })).status, 404);
    // A column, then its values.
    await page.getByRole('button', { name: 'Add column' }).click();
    const columnDialog = page.getByRole('dialog', { name: 'Add a column to Note' });
    await columnDialog.getByLabel('Name').fill('rating');
    await columnDialog.getByLabel('Type').selectOption('Number');
    await columnDialog.getByRole('button', { name: 'Add column' }).click();
    await page.locator('th[data-field="rating"]').waitFor();
    const schema = await rest('GET', '/schemas/Note', undefined, { master: true });
    assert.deepEqual(schema.json.fields.rating, { type: 'Number' });
  });

  await step(t, 'ACL and CLP editors save through the API', async () => {
    const page = pages.operator;
    const row = page.locator('tr[data-id]').filter({ hasText: 'second' });
    const id = await row.getAttribute('data-id');
    await row.getByRole('button', { name: `Edit the ACL of ${id}` }).click();
    const dialog = page.getByRole('dialog', { name: `ACL of Note ${id}` });
    await dialog.getByRole('button', { name: 'Add entry' }).click();
    await dialog.getByLabel('Entry 1: who (* for the public, a user id, role:Name)').fill(people.ada.id);
    await dialog.getByLabel('Entry 1: write').check();
    await shot(page, 'console-acl');
    await dialog.getByRole('button', { name: 'Save ACL' }).click();
    await page.getByText('Saved the ACL.').waitFor();
    assert.deepEqual((await rest('GET', `/classes/Note/${id}`, undefined, { master: true })).json.ACL, { [people.ada.id]: { read: true, write: true } });
    await page.getByRole('button', { name: 'Permissions (CLP)' }).click();
    const clp = page.getByRole('dialog', { name: 'Class-level permissions of Note' });
    await clp.getByLabel('delete: public').uncheck();
    await clp.getByLabel('delete: user ids and role:Name, comma-separated').fill('role:Moderators');
    await clp.getByRole('button', { name: 'Save permissions' }).click();
    await page.getByText('Saved the permissions.').waitFor();
    const schema = await rest('GET', '/schemas/Note', undefined, { master: true });
    assert.deepEqual(schema.json.classLevelPermissions.delete, { 'role:Moderators': true });
    assert.deepEqual(schema.json.classLevelPermissions.find, { '*': true });
  });

  await step(t, 'schema: the ER diagram of the template classes, the dictionary, and the Mermaid source of `parlor schema`', async () => {
    const page = pages.operator;
    await nav(page).getByRole('link', { name: 'Schema' }).click();
    const diagram = page.locator('svg.er-diagram');
    await diagram.waitFor();
    for (const name of ['_User', 'ChatSession', 'Message', 'Context', 'Persona', 'AiUsage', 'Note']) {
      await diagram.locator(`g.er-node[data-class="${name}"]`).waitFor();
    }
    assert.ok(await diagram.locator('path.er-edge[data-from="Message"][data-to="ChatSession"]').count() >= 1);
    assert.ok(await diagram.locator('path.er-edge[data-from="ChatSession"][data-to="Context"]').count() >= 1);
    await shot(page, 'console-schema');
    await assertNamed(page, 'the ER diagram');
    await page.getByRole('tab', { name: 'Data dictionary' }).click();
    const message = page.getByRole('table', { name: 'Message' });
    await message.getByRole('row', { name: /content String yes\s+The text \(Markdown\)\./ }).waitFor();
    await shot(page, 'console-dictionary');
    await page.getByRole('tab', { name: 'Mermaid' }).click();
    const shown = await page.locator('pre[data-format="mermaid"]').textContent();
    const printed = spawnSync(process.env.PARLOR_BIN || path.join(REPO_ROOT, 'target', 'debug', 'parlor'), ['schema', '--database', `sqlite://${path.join(dir, 'parlor.db')}`, '--format', 'mermaid'], { encoding: 'utf8' });
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(`${shown}\n`, printed.stdout, 'the console shows what `parlor schema` prints');
    await page.getByRole('tab', { name: 'JSON schema' }).click();
    const json = JSON.parse(await page.locator('pre[data-format="json"]').textContent());
    assert.ok(json.results.some((schema) => schema.className === 'Message'));
  });

  await step(t, 'API playground: REST as the master key, another user and anonymous, with status, time, headers and curl', async () => {
    const page = pages.operator;
    await nav(page).getByRole('link', { name: 'API playground' }).click();
    await page.getByLabel('Class or group').selectOption('Message');
    await page.getByLabel('Operation').selectOption('GET /classes/Message');
    await page.locator('input[data-param="limit"]').fill('2');
    await page.getByRole('button', { name: 'Send request' }).click();
    const badge = page.locator('.status-badge');
    await badge.filter({ hasText: '200' }).waitFor();
    const body = JSON.parse(await page.getByLabel('Answer body').textContent());
    assert.equal(body.results.length, 2);
    assert.match(await page.locator('[data-elapsed]').textContent(), /\d+ ms/);
    const curl = await page.getByLabel('curl command').textContent();
    assert.match(curl, /X-Parse-Master-Key: \$PARLOR_MASTER_KEY/);
    assert.ok(!curl.includes(server.masterKey), 'the master key itself is not in the curl line');
    await page.getByText('Headers (').click();
    await page.locator('.headers-table th', { hasText: 'x-request-id' }).waitFor();
    await shot(page, 'console-playground');
    await assertNamed(page, 'the playground');
    // Another user, logged in from the picker: /users/me answers that user.
    await page.getByLabel('Send as').selectOption('other');
    await page.getByPlaceholder('username').fill('ada');
    await page.getByPlaceholder('password').fill('secret-pass');
    await page.getByRole('button', { name: 'Log in as this user' }).click();
    await page.getByText('Logged in as ada').waitFor();
    await page.getByLabel('Class or group').selectOption('Users');
    await page.getByLabel('Operation').selectOption('GET /users/me');
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.waitForFunction(() => document.querySelector('[aria-label="Answer body"]')?.textContent.includes('"username": "ada"'));
    // Anonymous: AiUsage is refused.
    await page.getByLabel('Send as').selectOption('anonymous');
    await page.getByLabel('Class or group').selectOption('AiUsage');
    await page.getByLabel('Operation').selectOption('GET /classes/AiUsage');
    await page.getByRole('button', { name: 'Send request' }).click();
    await badge.filter({ hasText: '400' }).waitFor();
    assert.match(await page.getByLabel('Answer body').textContent(), /"code": 119/);
  });

  await step(t, 'API playground: GraphQL with the same identity picker', async () => {
    const page = pages.operator;
    await page.getByLabel('Send as').selectOption('master');
    await page.getByLabel('Query', { exact: true }).fill('{ health }');
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll('[aria-label="Answer body"]')].some((node) => node.textContent.includes('"health": true')));
    await page.getByLabel('Query', { exact: true }).fill('query { notes(order: [n_ASC]) { count edges { node { text } } } }');
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll('[aria-label="Answer body"]')].some((node) => node.textContent.includes('"count": 3')));
    await page.locator('.result-holder').last().scrollIntoViewIfNeeded();
    await shot(page, 'console-graphql');
    // GraphiQL opens with the picked user's token in its headers (never the master key).
    await page.getByLabel('Send as').selectOption('user:ada');
    const [graphiql] = await Promise.all([
      page.context().waitForEvent('page'),
      page.getByRole('button', { name: 'Open GraphiQL ↗' }).click(),
    ]);
    await graphiql.waitForLoadState();
    assert.match(graphiql.url(), /\/graphql\/playground$/);
    await graphiql.locator('.graphiql-container').waitFor();
    // GraphiQL takes the headers the console left for it into its tab's state.
    const tabs = JSON.parse(await graphiql.evaluate(() => localStorage.getItem('graphiql:tabState')));
    const headers = JSON.parse(tabs.tabs[tabs.activeTabIndex].headers);
    assert.match(headers['X-Parse-Session-Token'], /^r:/);
    assert.equal(headers['X-Parse-Master-Key'], undefined);
    await graphiql.close();
  });

  await step(t, 'AI usage: charts and tables from real replies; a running reply is cancelled', async () => {
    const page = pages.operator;
    await nav(page).getByRole('link', { name: 'AI usage' }).click();
    const tokens = page.getByRole('img', { name: 'Tokens per day' });
    await tokens.waitFor();
    assert.ok(await tokens.locator('rect.chart-bar').count() >= 1, 'tokens are drawn');
    assert.ok(await page.getByRole('img', { name: 'Replies per day' }).locator('rect.chart-bar').count() >= 1);
    await page.getByRole('table', { name: 'Per persona' }).getByRole('row', { name: /Sage\s+2/ }).waitFor();
    await page.getByRole('table', { name: 'Per user' }).getByRole('row', { name: /bob\s+2/ }).waitFor();
    await page.getByText('No reply is being generated right now.').waitFor();
    await shot(page, 'console-usage');
    await assertNamed(page, 'the usage screen');
    // A long reply, cancelled from the console.
    const slow = await rest('POST', '/classes/Message', { session: { __type: 'Pointer', className: 'ChatSession', objectId: sessionId }, content: 'Tell me everything' }, { token: people.bob.token });
    const replyId = slow.json.replies[0];
    const cancel = page.getByRole('button', { name: `Cancel reply ${replyId}` });
    await cancel.waitFor();
    await shot(page, 'console-usage-running');
    await cancel.click();
    await page.getByText(`Cancelled ${replyId}.`).waitFor();
    assert.equal((await rest('GET', `/classes/Message/${replyId}`, undefined, { master: true })).json.status, 'cancelled');
  });

  await step(t, 'Live: a chat client connected and its subscriptions, server health', async () => {
    const chat = pages.bob;
    await chat.goto(`${base}/`);
    await chat.getByLabel('Username', { exact: true }).fill('bob');
    await chat.getByLabel('Password', { exact: true }).fill('secret-pass');
    await chat.getByRole('button', { name: 'Log in' }).click();
    await chat.getByRole('link', { name: /Usage/ }).click();
    await chat.getByRole('heading', { name: 'Usage' }).waitFor();
    const page = pages.operator;
    await nav(page).getByRole('link', { name: 'Live' }).click();
    await page.getByRole('heading', { name: 'Server health' }).waitFor();
    const clients = page.getByRole('table', { name: /^Clients/ });
    await clients.getByRole('link', { name: people.bob.id }).waitFor({ timeout: 20_000 });
    const perClass = page.getByRole('table', { name: 'Subscriptions per class' });
    await perClass.getByRole('row', { name: /ChatSession/ }).waitFor();
    await perClass.getByRole('row', { name: /Message/ }).waitFor();
    await page.getByRole('img', { name: 'Subscriptions per class' }).waitFor();
    await shot(page, 'console-live');
    await assertNamed(page, 'the Live screen');
  });

  await step(t, 'an admin user: the schema and its own rights; the operator\u2019s screens say they need the master key', async () => {
    await rest('PUT', `/users/${people.ada.id}`, { role: 'admin' }, { master: true });
    const page = await newPage('ada');
    await page.goto(`${base}/console`);
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('secret-pass');
    await page.getByRole('button', { name: 'Log in as an admin' }).click();
    await nav(page).waitFor();
    await page.getByText('ada (admin)').waitFor();
    await page.goto(`${base}/console#/data/Note`);
    // Ada reads what the ACLs let her: the row she was given, and the public ones.
    await page.locator('tr[data-id]').first().waitFor();
    const classes = page.getByRole('navigation', { name: 'Classes and their rows' });
    await classes.getByRole('link', { name: /^AiUsage\s*AiUsage: not counted/ }).waitFor();
    await page.goto(`${base}/console#/schema`);
    await page.locator('svg.er-diagram g.er-node[data-class="Message"]').waitFor();
    await page.goto(`${base}/console#/live`);
    await page.getByText('shown to the master key only').waitFor();
    await page.goto(`${base}/console#/usage`);
    await page.getByRole('alert').filter({ hasText: 'Token usage (AiUsage): Refused' }).waitFor();
    await page.getByText('The replies being generated are shown to the master key only.').waitFor();
    // Demoted while signed in: the next visit sends her back to the sign-in.
    await rest('PUT', `/users/${people.ada.id}`, { role: 'participant' }, { master: true });
    await page.reload();
    await page.getByRole('button', { name: 'Log in as an admin' }).waitFor();
  });

  await t.test('no script errors', () => {
    assert.deepEqual(errors, []);
  });
});
