// The web app end to end, in a real browser: two people (two browser contexts) and a
// persona on the fake streaming provider in one session, an outsider, a server restart in
// the middle. Each step is a subtest; screenshots of each main screen go to
// target/e2e-screenshots. Timings (first screen, JavaScript size) are printed.

import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnServer, freePort } from '../sdk/harness.mjs';
import { startFakeLlm } from '../sdk/fake-llm.mjs';
import { launch, screenshot, unnamedControls } from './browser.mjs';

const TOKENS = Array.from({ length: 60 }, (_, index) => (index === 0 ? 'Sure' : ` word${index}`));
const FULL_REPLY = TOKENS.join('');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = mkdtempSync(path.join(tmpdir(), 'parlor-e2e-'));
let server;
let fake;
let browser;
let port;
const people = {};

async function startServer() {
  server = await spawnServer({
    dir,
    port,
    extraArgs: ['--llm-base-url', fake.baseUrl, '--llm-model', 'fake-model', '--reply-stale-after', '2'],
  });
  return server;
}

/** A REST call as the master key or a user. */
async function rest(method, p, body, { token, master } = {}) {
  const headers = { 'X-Parse-Application-Id': server.appId, 'Content-Type': 'application/json' };
  if (master) headers['X-Parse-Master-Key'] = server.masterKey;
  if (token) headers['X-Parse-Session-Token'] = token;
  const response = await fetch(server.url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, json: await response.json().catch(() => null) };
}

/** A new browser context for a person, with console errors collected. */
async function person(name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|WebSocket/.test(message.text())) {
      errors.push(message.text());
    }
  });
  const who = { name, context, page, errors };
  people[name] = who;
  return who;
}

function base() {
  return `http://127.0.0.1:${port}`;
}

async function signUp(who, password = 'secret-pass') {
  const { page } = who;
  await page.goto(`${base()}/#/signup`);
  await page.getByLabel('Username', { exact: true }).fill(who.name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await side(page).getByRole('link', { name: 'New session' }).waitFor();
  who.token = await page.evaluate(() => JSON.parse(localStorage.getItem('parlor.session')).token);
  who.id = await page.evaluate(() => JSON.parse(localStorage.getItem('parlor.session')).user.objectId);
}

async function assertNamed(page, screen) {
  const unnamed = await unnamedControls(page);
  assert.deepEqual(unnamed, [], `controls without an accessible name on ${screen}`);
}

/** The session list and menu beside every page. */
function side(page) {
  return page.getByRole('complementary', { name: 'Sessions and menu' });
}

/** The text of the last persona reply shown on `page`. */
function lastReply(page) {
  return page.locator('article.message.assistant').last();
}

let sessionId;

test.before(async () => {
  fake = await startFakeLlm({ tokens: TOKENS, delayMs: 60 });
  port = await freePort();
  await startServer();
  browser = await launch();
});

test.after(async () => {
  await browser?.close();
  await server?.stop();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A subtest that, when it fails, leaves a screenshot of every open page (CI keeps them). */
function step(t, name, body) {
  return t.test(name, async () => {
    try {
      await body();
    } catch (error) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      for (const who of Object.values(people)) {
        if (!who.page.isClosed()) await screenshot(who.page, `failed-${slug}-${who.name}`).catch(() => {});
      }
      throw error;
    }
  });
}

test('the web app', { timeout: 600_000 }, async (t) => {
  await step(t, 'served with a CSP, hashed immutable assets, gzip; JavaScript under 200 KB compressed', async () => {
    const index = await fetch(`${base()}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const csp = index.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = await index.text();
    assert.doesNotMatch(html, /<script>(?!<\/script>)|<script [^>]*>[^<]/, 'no inline script');
    const scripts = [...html.matchAll(/(?:src|href)="(\/assets\/[0-9a-f]+\/[^"]+\.js)"/g)].map((match) => match[1]);
    assert.ok(scripts.length >= 5, 'modules are preloaded by URL');
    let compressed = 0;
    for (const url of scripts) {
      const response = await fetch(base() + url, { headers: { 'Accept-Encoding': 'gzip' } });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('cache-control'), /immutable/);
      assert.equal(response.headers.get('content-encoding'), 'gzip');
      compressed += Number(response.headers.get('content-length'));
      await response.arrayBuffer();
    }
    console.log(`web app JavaScript: ${scripts.length} modules, ${(compressed / 1024).toFixed(1)} KB gzip-compressed`);
    assert.ok(compressed < 200 * 1024, `JavaScript is ${compressed} bytes compressed`);
    const stale = await fetch(`${base()}/assets/000000000000/main.js`);
    assert.equal(stale.status, 404, 'another version\u2019s URL is not served this version\u2019s bytes');
    const health = await fetch(`${base()}/health`);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const api = await fetch(`${base()}/parse/classes/Message`, { headers: { 'X-Parse-Application-Id': server.appId } });
    assert.equal(typeof (await api.json()).code, 'number', 'the API answers as before under the mount path');
  });

  await step(t, 'first screen under 1 s from a cold load', async () => {
    const alice = await person('alice');
    await alice.page.goto(`${base()}/`);
    await alice.page.getByRole('heading', { name: 'Welcome back' }).waitFor();
    const timing = await alice.page.evaluate(() => {
      const navigation = performance.getEntriesByType('navigation')[0];
      const first = performance.getEntriesByName('parlor:first-screen')[0];
      return { firstScreen: first?.startTime, domContentLoaded: navigation.domContentLoadedEventEnd, load: navigation.loadEventEnd };
    });
    console.log(`first screen (cold): ${timing.firstScreen.toFixed(0)} ms; DOMContentLoaded ${timing.domContentLoaded.toFixed(0)} ms; load ${timing.load.toFixed(0)} ms`);
    assert.ok(timing.firstScreen < 1000, `first screen after ${timing.firstScreen} ms`);
    // The developer tools are one click away from `/`, and the playground link leads to GraphiQL.
    const tools = alice.page.getByRole('navigation', { name: 'Developer tools' });
    assert.equal(await tools.getByRole('link', { name: 'Console' }).getAttribute('href'), '/console');
    const playground = await tools.getByRole('link', { name: 'GraphQL playground' }).getAttribute('href');
    assert.equal(playground, '/graphql/playground');
    const graphiql = await fetch(`${base()}${playground}`);
    assert.equal(graphiql.status, 200, 'the playground link answers');
    await screenshot(alice.page, 'login');
    await assertNamed(alice.page, 'the log-in page');
  });

  await step(t, 'sign up, refusals in plain words, log out and in', async () => {
    const { page } = people.alice;
    await signUp(people.alice);
    const bob = await person('bob');
    await signUp(bob);
    const eve = await person('eve');
    await signUp(eve);
    // A taken username.
    const other = await person('other');
    await other.page.goto(`${base()}/#/signup`);
    await other.page.getByLabel('Username', { exact: true }).fill('alice');
    await other.page.getByLabel('Password', { exact: true }).fill('another-pass');
    await other.page.getByRole('button', { name: 'Create account' }).click();
    await other.page.getByRole('alert').filter({ hasText: 'That username is taken' }).waitFor();
    // A wrong password.
    await other.page.goto(`${base()}/#/login`);
    await other.page.getByLabel('Username', { exact: true }).fill('alice');
    await other.page.getByLabel('Password', { exact: true }).fill('wrong-pass');
    await other.page.getByRole('button', { name: 'Log in' }).click();
    await other.page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
    await screenshot(other.page, 'login-refused');
    await other.context.close();
    // Log out, log in again.
    await side(page).getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Welcome back' }).waitFor();
    await page.getByLabel('Username', { exact: true }).fill('alice');
    await page.getByLabel('Password', { exact: true }).fill('secret-pass');
    await page.getByRole('button', { name: 'Log in' }).click();
    await side(page).getByRole('link', { name: 'New session' }).waitFor();
    people.alice.token = await page.evaluate(() => JSON.parse(localStorage.getItem('parlor.session')).token);
    await screenshot(page, 'home');
    await assertNamed(page, 'the home page');
  });

  await step(t, 'a persona, created in the form and imported from a Character Card', async () => {
    const { page } = people.alice;
    await side(page).getByRole('link', { name: 'Personas' }).click();
    await page.getByRole('link', { name: 'New persona' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Sage');
    await page.getByLabel('Description').fill('A calm guide who answers briefly.');
    await page.getByLabel('System prompt').fill('Answer in one short paragraph.');
    await page.getByLabel('Temperature').fill('0.4');
    await page.getByLabel('Max tokens per reply').fill('300');
    await assertNamed(page, 'the persona form');
    await page.locator('.page-body').evaluate((element) => element.scrollTo(0, 0));
    await screenshot(page, 'persona-edit');
    await page.getByRole('button', { name: 'Create persona' }).click();
    await page.getByRole('link', { name: /Sage/ }).waitFor();

    // A V2 card inside a PNG, as SillyTavern exports it.
    await page.getByRole('link', { name: 'New persona' }).click();
    const card = { spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Seraphina', description: '{{char}} guards the forest.', first_mes: 'Welcome, traveller.', personality: 'kind', scenario: '', mes_example: '', system_prompt: '' } };
    await page.locator('#persona-card').setInputFiles({ name: 'seraphina.png', mimeType: 'image/png', buffer: pngCard(card) });
    await page.getByText('Imported "Seraphina"').waitFor();
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Seraphina');
    assert.equal(await page.getByLabel('Description').inputValue(), 'Seraphina guards the forest.');
    assert.equal(await page.getByLabel('Greeting').inputValue(), 'Welcome, traveller.');
    await page.getByRole('button', { name: 'Create persona' }).click();
    await page.getByRole('link', { name: /Seraphina/ }).waitFor();
    await screenshot(page, 'personas');
    const stored = await rest('GET', '/classes/Persona?where=' + encodeURIComponent(JSON.stringify({ name: 'Seraphina' })), undefined, { master: true });
    assert.equal(stored.json.results[0].greeting, 'Welcome, traveller.');
    assert.equal(stored.json.results[0].avatar.__type, 'File', 'the card image became the avatar');
  });

  await step(t, 'create a session with a participant by username and a persona; it appears live for the participant', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    await side(page).getByRole('link', { name: 'New session' }).click();
    await page.getByLabel('Title', { exact: true }).fill('Trip to Lisbon');
    await page.getByLabel('People', { exact: true }).fill('bo');
    await page.getByRole('option', { name: /bob/ }).click();
    await page.getByRole('listitem').filter({ hasText: 'bob' }).waitFor();
    await page.getByRole('checkbox', { name: /^Sage/ }).check();
    await page.getByLabel('Who answers', { exact: true }).selectOption('all');
    await assertNamed(page, 'the new-session form');
    await screenshot(page, 'new-session');
    assert.equal(await side(bobPage).getByRole('link', { name: /Trip to Lisbon/ }).count(), 0);
    await page.getByRole('button', { name: 'Create session' }).click();
    await page.getByRole('heading', { name: 'Trip to Lisbon' }).waitFor();
    sessionId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    // Bob's list shows it without a reload.
    await side(bobPage).getByRole('link', { name: /Trip to Lisbon/ }).waitFor();
    // Sage's greeting? Sage has none; Seraphina is not in this session.
  });

  await step(t, 'a message appears live for the other person, and the persona\u2019s reply streams in both', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    await side(bobPage).getByRole('link', { name: /Trip to Lisbon/ }).click();
    await bobPage.getByRole('heading', { name: 'Trip to Lisbon' }).waitFor();
    const composer = page.getByRole('combobox', { name: 'Message' });
    await composer.click();
    await composer.pressSequentially('Where should we eat? @Sa');
    // @mention completion, by keyboard.
    await page.getByRole('option', { name: 'Sage' }).waitFor();
    await page.keyboard.press('Enter');
    assert.equal(await composer.inputValue(), 'Where should we eat? @Sage ');
    await page.keyboard.press('Enter');
    await bobPage.locator('article.message.user').filter({ hasText: 'Where should we eat?' }).waitFor();
    // The reply grows in both browsers: seen part-way, then whole.
    for (const viewer of [page, bobPage]) {
      await viewer.waitForFunction(() => {
        const reply = [...document.querySelectorAll('article.message.assistant .content')].pop();
        return reply && reply.textContent.startsWith('Sure word1') && !reply.textContent.includes('word59');
      }, null, { timeout: 10_000 });
    }
    await screenshot(bobPage, 'chat-streaming');
    for (const viewer of [page, bobPage]) {
      await lastReply(viewer).filter({ hasText: 'word59' }).waitFor({ timeout: 15_000 });
      assert.equal((await lastReply(viewer).locator('.content').textContent()).trim(), FULL_REPLY);
    }
    assert.equal(await lastReply(page).locator('.author').textContent(), 'Sage');
  });

  await step(t, 'stop a streaming reply, then regenerate it and flip between the answers', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    const composer = bobPage.getByRole('combobox', { name: 'Message' });
    await composer.fill('And after dinner?');
    await composer.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('article.message.assistant.status-streaming').length === 1);
    await page.getByRole('button', { name: 'Stop' }).first().click();
    for (const viewer of [page, bobPage]) {
      await lastReply(viewer).locator('.message-note', { hasText: 'Stopped.' }).waitFor();
    }
    const stopped = (await lastReply(page).locator('.content').textContent()).trim();
    assert.ok(stopped.length < FULL_REPLY.length, 'the reply stopped before its end');
    await lastReply(page).hover();
    await lastReply(page).getByRole('button', { name: 'Regenerate this answer' }).click();
    await lastReply(page).getByText('2 / 2').waitFor();
    await lastReply(page).filter({ hasText: 'word59' }).waitFor({ timeout: 15_000 });
    await lastReply(bobPage).getByText('2 / 2').waitFor();
    await lastReply(page).getByRole('button', { name: 'Previous answer' }).click();
    await lastReply(page).getByText('1 / 2').waitFor();
    assert.equal((await lastReply(page).locator('.content').textContent()).trim(), stopped);
    await lastReply(page).getByRole('button', { name: 'Next answer' }).click();
    await lastReply(page).getByText('2 / 2').waitFor();
    await screenshot(page, 'chat-siblings');
    await assertNamed(page, 'the chat');
  });

  await step(t, 'HTML and script in a message render as text and run nothing', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    const payload = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [link](javascript:window.__xss=3)';
    const composer = bobPage.getByRole('combobox', { name: 'Message' });
    await composer.fill(payload);
    await composer.press('Enter');
    const shown = page.locator('article.message.user').filter({ hasText: '<script>window.__xss=2</script>' });
    await shown.waitFor();
    assert.match(await shown.locator('.content').textContent(), /<img src=x onerror="window.__xss=1">/);
    assert.equal(await shown.locator('.content img, .content script, .content a').count(), 0);
    await shown.locator('.content').click();
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await bobPage.evaluate(() => window.__xss), undefined);
    // Markdown that is meant: a list, emphasis, a code block (with a copy button).
    await composer.fill('Shortlist:\n\n- **Time Out Market**, many stalls\n- *Cervejaria Ramiro* for seafood\n\n```js\nconst budget = 300; // euros\n```');
    await composer.press('Enter');
    const rich = page.locator('article.message.user').filter({ hasText: 'Shortlist' });
    await rich.locator('.content li strong', { hasText: 'Time Out Market' }).waitFor();
    await rich.locator('.content pre code[data-lang="js"]', { hasText: 'const budget = 300;' }).waitFor();
    await rich.getByRole('button', { name: 'Copy code' }).waitFor({ state: 'attached' });
    await lastReply(page).filter({ hasText: 'word59' }).waitFor({ timeout: 15_000 });
    await page.waitForTimeout(300);
    await screenshot(page, 'chat');
  });

  await step(t, 'an outsider cannot open the session, not even by its URL', async () => {
    const evePage = people.eve.page;
    assert.equal(await side(evePage).getByRole('link', { name: /Trip to Lisbon/ }).count(), 0);
    await evePage.goto(`${base()}/#/s/${sessionId}`);
    await evePage.getByRole('alert').filter({ hasText: 'not one of its members' }).waitFor();
    assert.equal(await evePage.locator('article.message').count(), 0);
    const direct = await rest('GET', `/classes/Message?where=${encodeURIComponent(JSON.stringify({ session: { __type: 'Pointer', className: 'ChatSession', objectId: sessionId } }))}`, undefined, { token: people.eve.token });
    assert.deepEqual(direct.json.results, []);
    await screenshot(evePage, 'outsider');
  });

  await step(t, 'search within the session jumps to the hit', async () => {
    const { page } = people.alice;
    await page.getByRole('button', { name: 'Search this session' }).click();
    await page.getByRole('searchbox', { name: 'Search messages in this session' }).fill('dinner');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: /after dinner/ }).click();
    await page.locator('article.message.highlight').filter({ hasText: 'And after dinner?' }).waitFor();
    await page.getByRole('button', { name: 'Close search' }).click();
  });

  await step(t, 'the Context panel: JSON checked and saved, the summary, the next prompt', async () => {
    const { page } = people.alice;
    await page.getByRole('button', { name: 'Context panel' }).click();
    const editor = page.getByLabel('Data (JSON)');
    await editor.fill('{"city": "Lisbon", ');
    await page.getByText('Not valid JSON').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Save data' }).isDisabled(), true);
    await editor.fill('{"city": "Lisbon", "budget": 300}');
    await page.getByRole('button', { name: 'Save data' }).click();
    await page.getByText('Saved.').waitFor();
    const context = await rest('GET', '/classes/Context?where=' + encodeURIComponent(JSON.stringify({ sessionId })), undefined, { master: true });
    assert.deepEqual(context.json.results[0].data, { city: 'Lisbon', budget: 300 });
    // The preview shows the saved data as the persona will see it.
    await page.locator('.preview-part').filter({ hasText: 'Context data' }).filter({ hasText: '"city":"Lisbon"' }).waitFor();
    await page.locator('.preview-summary').filter({ hasText: 'tokens' }).waitFor();
    await page.getByRole('heading', { name: 'Summary' }).scrollIntoViewIfNeeded();
    await page.locator('.context-panel').evaluate((panel) => panel.scrollBy(0, 300));
    await screenshot(page, 'context');
    await assertNamed(page, 'the Context panel');
    await page.getByRole('button', { name: 'Close the context panel' }).click();
  });

  await step(t, 'phone width and dark theme', async () => {
    const phone = await person('bob-phone', { width: 390, height: 844 });
    await phone.page.goto(`${base()}/`);
    await phone.page.getByLabel('Username', { exact: true }).fill('bob');
    await phone.page.getByLabel('Password', { exact: true }).fill('secret-pass');
    await phone.page.getByRole('button', { name: 'Log in' }).click();
    await phone.page.getByRole('button', { name: 'Open the session list' }).click();
    await side(phone.page).getByRole('link', { name: /Trip to Lisbon/ }).click();
    await phone.page.getByRole('heading', { name: 'Trip to Lisbon' }).waitFor();
    await lastReply(phone.page).waitFor();
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
    await screenshot(phone.page, 'chat-phone');
    await phone.page.getByRole('button', { name: 'Open the session list' }).click();
    await side(phone.page).getByRole('button', { name: 'Switch to the dark theme' }).click();
    assert.equal(await phone.page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await side(phone.page).getByRole('link', { name: /Trip to Lisbon/ }).click();
    await screenshot(phone.page, 'chat-phone-dark');
    await phone.context.close();
    const { page } = people.alice;
    await side(page).getByRole('button', { name: 'Switch to the dark theme' }).click();
    await screenshot(page, 'chat-dark');
    await side(page).getByRole('button', { name: 'Switch to the light theme' }).click();
  });

  await step(t, 'a server restart mid-reply: reconnects, shows the failed reply, retries, catches up', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    const composer = bobPage.getByRole('combobox', { name: 'Message' });
    await composer.fill('Tell me about trams.');
    await composer.press('Enter');
    await page.waitForFunction(() => {
      const reply = [...document.querySelectorAll('article.message.assistant .content')].pop();
      return reply && reply.textContent.includes('word3') && !reply.textContent.includes('word59');
    });
    // A crash, not a clean stop: the reply's task dies with the server.
    process.kill(server.pid, 'SIGKILL');
    await server.stop();
    await page.getByRole('status').filter({ hasText: /Reconnecting|Connecting/ }).first().waitFor();
    await screenshot(page, 'reconnecting');
    await startServer();
    // Posted right after the restart, possibly before the browsers reconnect: caught up.
    const posted = await rest('POST', '/classes/Message', {
      session: { __type: 'Pointer', className: 'ChatSession', objectId: sessionId },
      content: 'Posted while you were reconnecting',
    }, { token: people.bob.token });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    await page.locator('article.message.user').filter({ hasText: 'Posted while you were reconnecting' }).waitFor({ timeout: 30_000 });
    // The cut reply ends failed (its server stopped), with the reason and a retry.
    const failed = page.locator('article.message.assistant.status-failed');
    await failed.first().waitFor({ timeout: 30_000 });
    await failed.first().locator('.message-error').filter({ hasText: 'The reply failed' }).waitFor();
    // The screenshot shows the failed reply itself, wherever the list was scrolled to.
    await failed.first().scrollIntoViewIfNeeded();
    await screenshot(page, 'reply-failed');
    await failed.first().getByRole('button', { name: 'Retry' }).click();
    await lastReply(page).filter({ hasText: 'word59' }).waitFor({ timeout: 20_000 });
    // And live messages flow again, both ways.
    await composer.fill('Back online?');
    await composer.press('Enter');
    await page.locator('article.message.user').filter({ hasText: 'Back online?' }).waitFor();
    await page.getByRole('status').filter({ hasText: /Reconnecting/ }).waitFor({ state: 'hidden' });
  });

  await step(t, 'rename (seen live by the other member), leave, archive', async () => {
    const { page } = people.alice;
    const bobPage = people.bob.page;
    // The settings arrive after the page shows (held back here, as on a loaded machine): what
    // is typed meanwhile is what is saved, not the title the load brings in after it.
    await page.route(`**/classes/ChatSession/${sessionId}`, async (route) => {
      await sleep(500);
      await route.continue();
    }, { times: 1 });
    await page.getByRole('link', { name: 'Session settings' }).click();
    await page.getByLabel('Title', { exact: true }).fill('Lisbon, May');
    await sleep(1000);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Lisbon, May' }).waitFor();
    await bobPage.getByRole('heading', { name: 'Lisbon, May' }).waitFor();
    await side(bobPage).getByRole('link', { name: /Lisbon, May/ }).waitFor();
    // Bob leaves: the session leaves his list and his screen.
    await bobPage.getByRole('link', { name: 'Session settings' }).click();
    await bobPage.getByText('Only the session\u2019s owner can change these settings.').waitFor();
    await bobPage.getByRole('button', { name: 'Leave session' }).click();
    await bobPage.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
    await bobPage.getByRole('heading', { name: /^Welcome/ }).waitFor();
    await side(bobPage).getByRole('link', { name: /Lisbon, May/ }).waitFor({ state: 'detached' });
    await page.locator('.chat-subtitle', { hasText: /^alice · with Sage$/ }).waitFor();
    // Alice archives it: hidden from the list until archived sessions are shown.
    await page.getByRole('link', { name: 'Session settings' }).click();
    await page.getByRole('button', { name: 'Archive', exact: true }).click();
    await page.getByRole('heading', { name: /^Welcome/ }).waitFor();
    await side(page).getByRole('link', { name: /Lisbon, May/ }).waitFor({ state: 'detached' });
    await side(page).getByRole('button', { name: 'Show archived' }).click();
    await side(page).getByRole('link', { name: /Lisbon, May/ }).click();
    await page.getByRole('heading', { name: 'Lisbon, May' }).waitFor();
    await page.getByText('archived', { exact: false }).first().waitFor();
  });

  await step(t, 'profile: a password change ends the other sessions; deleting an account', async () => {
    const { page } = people.alice;
    const second = await person('alice-second');
    await second.page.goto(`${base()}/`);
    await second.page.getByLabel('Username', { exact: true }).fill('alice');
    await second.page.getByLabel('Password', { exact: true }).fill('secret-pass');
    await second.page.getByRole('button', { name: 'Log in' }).click();
    await side(second.page).getByRole('link', { name: 'New session' }).waitFor();
    await side(page).getByRole('link', { name: /Your profile/ }).click();
    await page.getByLabel('Display name').fill('Alice A.');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText('Saved.', { exact: true }).waitFor();
    await page.getByLabel('New password', { exact: true }).fill('new-secret-pass');
    await page.getByLabel('New password again').fill('new-secret-pass');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('Your other sessions have ended.').waitFor();
    await side(page).getByRole('link', { name: /Your profile/ }).filter({ hasText: 'Alice A.' }).waitFor();
    people.alice.token = await page.evaluate(() => JSON.parse(localStorage.getItem('parlor.session')).token);
    await screenshot(page, 'profile');
    await assertNamed(page, 'the profile page');
    // The other browser is sent back to the log-in page.
    await second.page.getByRole('heading', { name: 'Welcome back' }).waitFor({ timeout: 15_000 });
    // This one still works.
    await side(page).getByRole('link', { name: /Lisbon, May/ }).click();
    await page.getByRole('heading', { name: 'Lisbon, May' }).waitFor();
    await second.context.close();

    const evePage = people.eve.page;
    await side(evePage).getByRole('link', { name: /Your profile/ }).click();
    await evePage.getByRole('button', { name: 'Delete my account' }).click();
    await evePage.getByRole('dialog').getByRole('button', { name: 'Delete my account' }).click();
    await evePage.getByRole('heading', { name: 'Create your account' }).waitFor();
    const login = await rest('POST', '/login', { username: 'eve', password: 'secret-pass' });
    assert.equal(login.status, 404);
  });

  await step(t, 'a chat of 10,000 messages opens at the end and pages in as it scrolls up', async () => {
    const alice = people.alice;
    const created = await rest('POST', '/classes/ChatSession', { title: 'Long history', participants: [] }, { token: alice.token });
    const longId = created.json.objectId;
    const session = { __type: 'Pointer', className: 'ChatSession', objectId: longId };
    for (let batch = 0; batch < 10; batch += 1) {
      const requests = Array.from({ length: 1000 }, (_, index) => ({
        method: 'POST',
        path: '/parse/classes/Message',
        body: { session, content: `message ${batch * 1000 + index}` },
      }));
      const answer = await rest('POST', '/batch', { requests }, { token: alice.token });
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.ok(answer.json.every((item) => item.success), JSON.stringify(answer.json.find((item) => !item.success)));
    }
    const { page } = alice;
    let loaded = 0;
    const count = (response) => {
      if (response.url().includes('/classes/Message?')) loaded += 1;
    };
    page.on('response', count);
    await page.goto(`${base()}/#/s/${longId}`);
    await page.locator('article.message').filter({ hasText: 'message 9999' }).waitFor();
    const shown = await page.locator('article.message').count();
    assert.ok(shown <= 50, `${shown} messages rendered at first`);
    // Scroll up three times: earlier pages arrive, the view stays where the reader was.
    for (let round = 0; round < 3; round += 1) {
      const before = await page.locator('article.message').count();
      await page.locator('.messages').evaluate((element) => {
        element.scrollTop = 0;
      });
      await page.waitForFunction((previous) => document.querySelectorAll('article.message').length > previous, before);
    }
    const after = await page.locator('article.message').count();
    assert.ok(after >= 150 && after <= 250, `${after} messages after three pages`);
    assert.ok(loaded <= 6, `${loaded} history requests`);
    page.off('response', count);
    await page.getByText('message 9850', { exact: true }).waitFor({ state: 'attached' });
    await screenshot(page, 'long-history');
    // Search for an old message: the history around it loads, not all of it.
    await page.getByRole('button', { name: 'Search this session' }).click();
    await page.getByRole('searchbox', { name: 'Search messages in this session' }).fill('1234');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: /message 1234/ }).click();
    await page.locator('article.message.highlight').filter({ hasText: 'message 1234' }).waitFor();
    const around = await page.locator('article.message').count();
    assert.ok(around <= 200, `${around} messages around the hit`);
    assert.equal(await page.getByText('message 9999', { exact: true }).count(), 0, 'the newest page is not loaded');
  });

  await t.test('no script errors in any browser', () => {
    for (const who of Object.values(people)) {
      assert.deepEqual(who.errors, [], `${who.name}'s page`);
    }
  });
});

/** A PNG (1×1) carrying `card` in a tEXt `chara` chunk, as SillyTavern writes it. */
function pngCard(card) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc(body));
    return Buffer.concat([head, body, tail]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  // One red pixel, deflated (zlib stored block).
  const raw = Buffer.from([0, 255, 0, 0]);
  const adler = (() => {
    let a = 1;
    let b = 0;
    for (const byte of raw) {
      a = (a + byte) % 65521;
      b = (b + a) % 65521;
    }
    const out = Buffer.alloc(4);
    out.writeUInt32BE(((b << 16) | a) >>> 0);
    return out;
  })();
  const idat = Buffer.concat([Buffer.from([0x78, 0x01, 0x01, raw.length, 0, (~raw.length) & 0xff, 0xff]), raw, adler]);
  const text = Buffer.concat([Buffer.from('chara\0', 'latin1'), Buffer.from(Buffer.from(JSON.stringify(card)).toString('base64'), 'latin1')]);
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('tEXt', text),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
