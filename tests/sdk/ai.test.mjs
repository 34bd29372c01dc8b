// AI personas end to end through the JS SDK (README "AI personas"): a fake OpenAI-compatible
// provider streams tokens; a user's Message gets a persona reply that a LiveQuery subscriber
// (with the user's session token, not the master key) sees created, growing and complete; the
// SSE token stream gives `delta` and `done`; `Parse.Cloud.run('generate')` works for a
// participant and is refused for anyone else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Parse, spawnServer, expectParseError, MASTER, sleep } from './harness.mjs';
import { startFakeLlm } from './fake-llm.mjs';

// Twelve tokens 30 ms apart: about 330 ms of streaming, several 75 ms flushes.
const TOKENS = ['The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', ' and', ' naps', '.'];
const EXPECTED = TOKENS.join('');

let fake;
let server;
let url;
let appId;

before(
  async () => {
    fake = await startFakeLlm({ tokens: TOKENS, delayMs: 30 });
    if (process.env.PARLOR_SDK_TARGET_URL) {
      throw new Error('ai.test.mjs needs a spawned server (it points Parlor at a fake LLM)');
    }
    server = await spawnServer({ extraArgs: ['--llm-base-url', fake.baseUrl, '--llm-model', 'fake-model'] });
    url = server.url;
    appId = server.appId;
    Parse.initialize(server.appId, undefined, server.masterKey);
    Parse.serverURL = server.url;
    Parse.CoreManager.set('REQUEST_ATTEMPT_LIMIT', 1);
  },
  { timeout: 60_000 },
);

after(async () => {
  if (server) await server.stop();
  if (fake) await fake.close();
});

const suffix = () => randomBytes(4).toString('hex');

async function signUp(name) {
  const user = await Parse.User.signUp(`${name}_${suffix()}`, `pw-${suffix()}`);
  return { user, token: user.getSessionToken() };
}

/** A persona (master key) and a session owned by `user` with that persona. */
async function sessionWithPersona(user, token, extra = {}) {
  const persona = new Parse.Object('Persona');
  await persona.save({ name: `Bot${suffix()}`, systemPrompt: 'You are a terse test bot.' }, MASTER);
  const session = new Parse.Object('ChatSession');
  await session.save({ title: 'AI test', participants: [user], personas: [persona], ...extra }, { sessionToken: token });
  return { persona, session };
}

/** Resolves with the value `check` returns once it is truthy; rejects after `ms`. */
async function waitFor(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Reads an SSE response to its end (the server closes after `done`); its events. */
async function readEvents(response, ms = 10_000) {
  const timer = setTimeout(() => response.body.cancel().catch(() => {}), ms);
  let text = '';
  try {
    text = await response.text();
  } finally {
    clearTimeout(timer);
  }
  const events = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const event = { event: 'message', id: undefined, data: undefined };
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event.event = line.slice(7);
      else if (line.startsWith('id: ')) event.id = line.slice(4);
      else if (line.startsWith('data: ')) event.data = JSON.parse(line.slice(6));
    }
    events.push(event);
  }
  return { text, events };
}

test('a user message gets a persona reply that LiveQuery sees grow and the SSE stream delivers', { timeout: 60_000 }, async () => {
  const { user, token } = await signUp('ada');
  const { persona, session } = await sessionWithPersona(user, token);

  const client = new Parse.LiveQueryClient({
    applicationId: appId,
    serverURL: url.replace(/^http/, 'ws'),
    sessionToken: token,
  });
  client.open();
  try {
    const query = new Parse.Query('Message').equalTo('session', session);
    const subscription = client.subscribe(query, token);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('LiveQuery subscription did not open within 5 s')), 5000);
      subscription.on('open', () => {
        clearTimeout(timer);
        resolve();
      });
    });

    const seen = []; // assistant events, in order: { op, id, status, content, usage, model }
    let onCreate;
    const created = new Promise((resolve) => {
      onCreate = resolve;
    });
    let onComplete;
    const completed = new Promise((resolve) => {
      onComplete = resolve;
    });
    const record = (op) => (object) => {
      if (object.get('role') !== 'assistant') return;
      const event = {
        op,
        id: object.id,
        status: object.get('status'),
        content: object.get('content'),
        usage: object.get('usage'),
        model: object.get('model'),
        persona: object.get('persona'),
        error: object.get('error'),
      };
      seen.push(event);
      if (op === 'create') onCreate(event);
      if (event.status && event.status !== 'streaming') onComplete(event);
    };
    subscription.on('create', record('create'));
    subscription.on('update', record('update'));

    const message = new Parse.Object('Message');
    await message.save({ session, content: 'Tell me about the fox' }, { sessionToken: token });

    const withTimeout = (promise, what, ms = 10_000) => {
      let timer;
      const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms; seen: ${JSON.stringify(seen)}`)), ms);
      });
      return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
    };
    const createEvent = await withTimeout(created, 'the assistant message was created');
    assert.equal(createEvent.status, 'streaming');
    assert.equal(createEvent.persona && createEvent.persona.id, persona.id);

    // Joins the token stream while the reply runs: a late joiner gets the text so far first.
    const stream = fetch(
      `${url}/messages/${createEvent.id}/stream?sessionToken=${encodeURIComponent(token)}&_ApplicationId=${encodeURIComponent(appId)}`,
    );

    const final = await withTimeout(completed, 'the reply finished', 15_000);
    assert.equal(final.op, 'update');
    assert.equal(final.id, createEvent.id);
    assert.equal(final.status, 'complete', JSON.stringify(final));
    assert.equal(final.content, EXPECTED);
    assert.equal(final.model, 'fake-model');
    assert.ok(final.usage, 'usage is set');
    assert.equal(final.usage.completion_tokens, TOKENS.length);
    assert.equal(final.usage.total_tokens, final.usage.prompt_tokens + TOKENS.length);

    // The reply grew in front of the subscriber: at least two streaming updates, each longer
    // than the one before and a prefix of the final text.
    const growing = seen.filter((event) => event.op === 'update' && event.status === 'streaming');
    assert.ok(growing.length >= 2, `expected >= 2 streaming updates, saw ${JSON.stringify(seen)}`);
    let length = 0;
    for (const event of growing) {
      assert.ok(EXPECTED.startsWith(event.content), `"${event.content}" is a prefix of the reply`);
      assert.ok(event.content.length > length, `content grows: ${JSON.stringify(growing.map((e) => e.content))}`);
      length = event.content.length;
    }
    assert.ok(length < EXPECTED.length, 'the streaming updates came before the whole text');

    const response = await withTimeout(stream, 'the SSE stream answered');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^text\/event-stream/);
    const { text, events } = await readEvents(response);
    const deltas = events.filter((event) => event.event === 'delta');
    const done = events.filter((event) => event.event === 'done');
    assert.ok(deltas.length >= 1, text);
    assert.equal(deltas.map((event) => event.data.text).join(''), EXPECTED, text);
    assert.equal(deltas[0].data.offset, 0, text);
    assert.equal(deltas.at(-1).id, String(Buffer.byteLength(EXPECTED)), text);
    assert.deepEqual(done.map((event) => event.data), [{ status: 'complete' }], text);
    assert.equal(events.at(-1).event, 'done', text);

    // The provider got the persona's prompt and the user's turn, as a streaming request.
    const request = fake.requests.find((r) => r.path === '/v1/chat/completions');
    assert.ok(request, 'the fake provider was called');
    assert.equal(request.body.model, 'fake-model');
    assert.equal(request.body.stream, true);
    const sent = JSON.stringify(request.body.messages);
    assert.ok(sent.includes('Tell me about the fox'), sent);
    assert.ok(JSON.stringify(request.body).includes('You are a terse test bot.'), JSON.stringify(request.body));

    // The reply is a readable Message for the participant, finished.
    const stored = await new Parse.Query('Message').get(createEvent.id, { sessionToken: token });
    assert.equal(stored.get('status'), 'complete');
    assert.equal(stored.get('content'), EXPECTED);
    assert.equal(stored.get('role'), 'assistant');
    // Through this client: `subscription.unsubscribe()` would go to the SDK's default client.
    await client.unsubscribe(subscription);
  } finally {
    // Close the socket before the server stops, or the client would keep reconnecting.
    await client.close();
  }
});

test("Parse.Cloud.run('generate') answers {messageId} for a participant and refuses anyone else", { timeout: 60_000 }, async () => {
  const { user, token } = await signUp('bea');
  const { session } = await sessionWithPersona(user, token, { policy: 'manual' });
  const before = fake.requests.length;

  const result = await Parse.Cloud.run('generate', { sessionId: session.id }, { sessionToken: token });
  assert.equal(typeof result.messageId, 'string', JSON.stringify(result));
  const reply = await waitFor('the generated reply to finish', async () => {
    const message = await new Parse.Query('Message').get(result.messageId, { sessionToken: token });
    return message.get('status') !== 'streaming' && message;
  });
  assert.equal(reply.get('status'), 'complete');
  assert.equal(reply.get('content'), EXPECTED);
  assert.equal(reply.get('session').id, session.id);
  assert.equal(fake.requests.length, before + 1);

  const { token: eveToken } = await signUp('eve');
  const refused = await expectParseError(
    Parse.Cloud.run('generate', { sessionId: session.id }, { sessionToken: eveToken }),
    Parse.Error.OBJECT_NOT_FOUND,
    assert,
  );
  assert.ok(refused.message, 'the refusal says why');
  // Without any session token at all, the function is refused too.
  let anonymousError;
  try {
    await Parse.Cloud.run('generate', { sessionId: session.id });
  } catch (error) {
    anonymousError = error;
  }
  assert.ok(anonymousError instanceof Parse.Error, `anonymous generate is refused: ${anonymousError}`);
  await sleep(100);
  assert.equal(fake.requests.length, before + 1, 'nothing was generated for eve');
  const messages = await new Parse.Query('Message').equalTo('session', session).find(MASTER);
  assert.equal(messages.length, 1);
});
