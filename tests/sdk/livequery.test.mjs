// Parse.LiveQuery through the official SDK (parse-protocol.md §11): query.subscribe() receives
// create, update and delete events over the server's WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, MASTER, uniqueClass } from './harness.mjs';

const srv = useServer(async (ctx) => {
  Parse.liveQueryServerURL = ctx.url.replace(/^http/, 'ws');
});

function nextEvent(subscription, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} event within 5 s`)), 5000);
    let done = false;
    subscription.on(name, (object, original) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ object, original });
    });
  });
}

test('query.subscribe() receives create, update and delete for matching objects only', async () => {
  const Note = uniqueClass('Note');
  await new Parse.Object(Note).save({ room: 'setup' }, MASTER);
  const query = new Parse.Query(Note).equalTo('room', 'r1');
  const subscription = await query.subscribe();
  await new Promise((resolve) => subscription.on('open', resolve));

  const created = nextEvent(subscription, 'create');
  await new Parse.Object(Note).save({ room: 'r2', text: 'elsewhere' }, MASTER);
  const note = await new Parse.Object(Note).save({ room: 'r1', text: 'hello' }, MASTER);
  const { object } = await created;
  assert.equal(object.id, note.id);
  assert.equal(object.get('text'), 'hello');

  const updated = nextEvent(subscription, 'update');
  note.set('text', 'edited');
  await note.save(null, MASTER);
  const update = await updated;
  assert.equal(update.object.get('text'), 'edited');
  assert.equal(update.original.get('text'), 'hello');

  const left = nextEvent(subscription, 'leave');
  note.set('room', 'r2');
  await note.save(null, MASTER);
  assert.equal((await left).object.get('room'), 'r2');

  const entered = nextEvent(subscription, 'enter');
  note.set('room', 'r1');
  await note.save(null, MASTER);
  assert.equal((await entered).object.get('room'), 'r1');

  const deleted = nextEvent(subscription, 'delete');
  await note.destroy(MASTER);
  assert.equal((await deleted).object.id, note.id);
  await subscription.unsubscribe();
  // Close the socket before the server stops, or the client would keep reconnecting.
  await Parse.LiveQuery.close();
});

test('a subscriber with a session token never receives objects its ACL hides', async () => {
  const Note = uniqueClass('Note');
  await new Parse.Object(Note).save({ room: 'setup' }, MASTER);
  const alice = await Parse.User.signUp(`alice_${Date.now()}`, 'pw-alice');
  const bob = await Parse.User.signUp(`bob_${Date.now()}`, 'pw-bob');
  const aliceToken = alice.getSessionToken();
  // The default client carries the master key (this suite initialises the SDK with it), and
  // the master key sees everything; a client app's connection has only the user's token.
  const client = new Parse.LiveQueryClient({
    applicationId: srv.appId,
    serverURL: srv.url.replace(/^http/, 'ws'),
    sessionToken: aliceToken,
  });
  client.open();
  const subscription = client.subscribe(new Parse.Query(Note), aliceToken);
  await new Promise((resolve) => subscription.on('open', resolve));
  const seen = [];
  subscription.on('create', (object) => seen.push(object.get('text')));

  const forBob = new Parse.ACL(bob);
  const hidden = new Parse.Object(Note);
  hidden.setACL(forBob);
  await hidden.save({ text: 'for bob' }, MASTER);
  const forAlice = new Parse.ACL(alice);
  const visible = new Parse.Object(Note);
  visible.setACL(forAlice);
  const created = nextEvent(subscription, 'create');
  await visible.save({ text: 'for alice' }, MASTER);
  const { object } = await created;
  assert.equal(object.get('text'), 'for alice');
  // An ACL change that grants alice read turns into `enter`.
  const entered = nextEvent(subscription, 'enter');
  const both = new Parse.ACL(bob);
  both.setReadAccess(alice, true);
  hidden.setACL(both);
  await hidden.save(null, MASTER);
  assert.equal((await entered).object.get('text'), 'for bob');
  assert.deepEqual(seen, ['for alice']);
  await client.close();
});
