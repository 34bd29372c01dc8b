// The chat template (protocol §14) through the JS SDK: the classes exist on first start, and the
// history query a chat client makes (newest 50 Messages of a session, with the session included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Parse, useServer, MASTER, expectParseError, sleep } from './harness.mjs';

let user;
let session;
let otherSession;

// Against an external server (e.g. the real Parse Server) the template classes are created here;
// Parlor must already have them.
async function ensureTemplateOnExternalServer() {
  const existing = new Set((await Parse.Schema.all()).map((s) => s.className));
  const defs = {
    Persona: (s) => s.addString('name').addString('description').addString('systemPrompt').addString('model'),
    Context: (s) => s.addString('sessionId', { required: true }).addObject('data', { required: true }).addString('summary'),
    ChatSession: (s) =>
      s.addArray('participants', { required: true }).addPointer('context', 'Context').addString('channel').addString('title')
        .addPointer('owner', '_User').addArray('personas').addDate('lastMessageAt').addBoolean('archived'),
    Message: (s) =>
      s.addPointer('session', 'ChatSession', { required: true }).addPointer('sender', '_User').addString('content', { required: true })
        .addDate('timestamp').addPointer('persona', 'Persona').addString('role').addString('status').addString('error').addObject('usage'),
  };
  for (const [name, build] of Object.entries(defs)) {
    if (!existing.has(name)) await build(new Parse.Schema(name)).save();
  }
}

useServer(async (ctx) => {
  if (ctx.external) await ensureTemplateOnExternalServer();
  const suffix = randomBytes(4).toString('hex');
  user = new Parse.User();
  user.set({ username: `chat_${suffix}`, password: `pw-${suffix}`, email: `chat_${suffix}@example.test` });
  await user.signUp();
  session = new Parse.Object('ChatSession');
  session.set({ title: 'Trip', channel: 'web', participants: [user], owner: user });
  await session.save(null, MASTER);
  otherSession = new Parse.Object('ChatSession');
  otherSession.set({ title: 'Other', channel: 'web', participants: [user], owner: user });
  await otherSession.save(null, MASTER);
});

test('the chat template classes exist on first start: _User, ChatSession, Message, Context, Persona', async () => {
  const all = await Parse.Schema.all();
  const byName = Object.fromEntries(all.map((s) => [s.className, s]));
  for (const c of ['_User', 'ChatSession', 'Message', 'Context', 'Persona']) assert.ok(byName[c], `class ${c} is missing`);
  const m = byName.Message.fields;
  assert.equal(m.session.type, 'Pointer');
  assert.equal(m.session.targetClass, 'ChatSession');
  assert.equal(m.session.required, true);
  assert.equal(m.content.type, 'String');
  assert.equal(m.content.required, true);
  assert.equal(m.sender.type, 'Pointer');
  assert.equal(m.sender.targetClass, '_User');
  const s = byName.ChatSession.fields;
  assert.equal(s.participants.type, 'Array');
  assert.equal(s.channel.type, 'String');
  const c = byName.Context.fields;
  assert.equal(c.sessionId.type, 'String');
  assert.equal(c.data.type, 'Object');
  assert.equal(byName.Persona.fields.name.type, 'String');
  assert.equal(byName._User.fields.username.type, 'String');
});

test('a Message without its required content (or session) is refused with 142', async () => {
  const noContent = new Parse.Object('Message');
  noContent.set({ session, sender: user, role: 'user' });
  await expectParseError(noContent.save(null, MASTER), Parse.Error.VALIDATION_ERROR, assert);
  const noSession = new Parse.Object('Message');
  noSession.set({ content: 'orphan', sender: user, role: 'user' });
  await expectParseError(noSession.save(null, MASTER), Parse.Error.VALIDATION_ERROR, assert);
});

test('a Message whose content is a Number is refused with 111', async () => {
  const bad = new Parse.Object('Message');
  bad.set({ session, sender: user, role: 'user', content: 42 });
  await expectParseError(bad.save(null, MASTER), Parse.Error.INCORRECT_TYPE, assert);
});

test('chat history: 60 Messages in a session; the newest 50 by -createdAt with include("session") come back newest first', async () => {
  // Messages of another session must not leak into the history.
  for (let i = 0; i < 3; i++) {
    await new Parse.Object('Message').save({ session: otherSession, sender: user, role: 'user', content: `other${i}` }, MASTER);
  }
  const sent = [];
  for (let i = 0; i < 60; i++) {
    const m = new Parse.Object('Message');
    m.set({ session, sender: user, role: 'user', content: `m${i}` });
    await m.save(null, MASTER);
    sent.push(m);
    await sleep(2); // distinct createdAt milliseconds, so the order is fully determined
  }
  const history = () => new Parse.Query('Message').equalTo('session', session).descending('createdAt');
  const page1 = await history().limit(50).include('session').find(MASTER);
  assert.equal(page1.length, 50);
  assert.deepEqual(
    page1.map((m) => m.get('content')),
    Array.from({ length: 50 }, (_, i) => `m${59 - i}`),
  );
  for (let i = 1; i < page1.length; i++) {
    assert.ok(page1[i - 1].createdAt > page1[i].createdAt, 'createdAt strictly decreasing');
  }
  for (const m of page1) {
    const s = m.get('session');
    assert.equal(s.id, session.id);
    assert.equal(s.className, 'ChatSession');
    assert.equal(s.isDataAvailable(), true, 'session is included');
    assert.equal(s.get('title'), 'Trip');
    assert.equal(m.get('sender').id, user.id);
    assert.equal(m.get('sender').isDataAvailable(), false, 'sender was not included');
  }
  const page2 = await history().skip(50).limit(50).find(MASTER);
  assert.deepEqual(page2.map((m) => m.get('content')), ['m9', 'm8', 'm7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
  assert.equal(await history().count(MASTER), 60);
  // the same history, oldest first, starting after a known message (what a "load newer" does)
  const newer = await new Parse.Query('Message')
    .equalTo('session', session)
    .greaterThan('createdAt', sent[55].createdAt)
    .ascending('createdAt')
    .find(MASTER);
  assert.deepEqual(newer.map((m) => m.get('content')), ['m56', 'm57', 'm58', 'm59']);
});
