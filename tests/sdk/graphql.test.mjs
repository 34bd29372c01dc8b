// The GraphQL API (parse-protocol.md §12) through real GraphQL clients from npm: graphql-request
// for queries and mutations (and a multipart file upload per the GraphQL multipart request
// spec), graphql-ws for subscriptions. The server's GraphQL path is /graphql beside /parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphQLClient, ClientError } from 'graphql-request';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { Parse, useServer, MASTER, uniqueClass } from './harness.mjs';

const srv = useServer();

const graphqlUrl = () => srv.url.replace(/\/parse$/, '/graphql');
const client = (headers = {}) =>
  new GraphQLClient(graphqlUrl(), { headers: { 'X-Parse-Application-Id': srv.appId, ...headers } });

async function signUp(username) {
  const { signUp } = await client().request(
    `mutation($u: String!) { signUp(input: {fields: {username: $u, password: "pw"}}) { viewer { sessionToken user { objectId } } } }`,
    { u: username },
  );
  return { token: signUp.viewer.sessionToken, id: signUp.viewer.user.objectId };
}

test('sign-up, log-in and viewer; the token works for the SDK too', async () => {
  const name = uniqueClass('alice').toLowerCase();
  const alice = await signUp(name);
  const { logIn } = await client().request(
    `mutation($u: String!) { logIn(input: {username: $u, password: "pw"}) { viewer { sessionToken user { id username } } } }`,
    { u: name },
  );
  assert.equal(logIn.viewer.user.username, name);
  assert.equal(Buffer.from(logIn.viewer.user.id, 'base64').toString(), `_User:${alice.id}`);
  const query = new Parse.Query(Parse.User).equalTo('objectId', alice.id);
  const found = await query.first({ sessionToken: logIn.viewer.sessionToken });
  assert.equal(found.get('username'), name);
  const me = await srv.rest('GET', '/users/me', { sessionToken: logIn.viewer.sessionToken });
  assert.equal(me.json.objectId, alice.id);
  const { viewer } = await client({ 'X-Parse-Session-Token': alice.token }).request('{ viewer { user { username } } }');
  assert.equal(viewer.user.username, name);
});

test('objects: create, the history query with pointers, update, delete, errors with Parse codes', async () => {
  const alice = await signUp(uniqueClass('a').toLowerCase());
  const as = client({ 'X-Parse-Session-Token': alice.token });
  const { createChatSession } = await as.request(
    `mutation { createChatSession(input: {fields: {title: "Trip", participants: []}}) { chatSession { id objectId title } } }`,
  );
  const session = createChatSession.chatSession;
  for (const content of ['one', 'two', 'three']) {
    await as.request(
      `mutation($s: ID!, $c: String!) { createMessage(input: {fields: {content: $c, session: {link: $s}}}) { message { objectId } } }`,
      { s: session.id, c: content },
    );
  }
  const { messages } = await as.request(
    `query($s: ID!) { messages(where: {session: {have: {objectId: {equalTo: $s}}}}, order: [createdAt_DESC], first: 2) {
       count pageInfo { hasNextPage endCursor } edges { node { content sender { objectId } session { title } } } } }`,
    { s: session.objectId },
  );
  assert.equal(messages.count, 3);
  assert.equal(messages.pageInfo.hasNextPage, true);
  assert.deepEqual(messages.edges.map((e) => e.node.content), ['three', 'two']);
  assert.ok(messages.edges.every((e) => e.node.sender.objectId === alice.id && e.node.session.title === 'Trip'));

  const { updateChatSession } = await as.request(
    `mutation($id: ID!) { updateChatSession(input: {id: $id, fields: {title: "Lisbon"}}) { chatSession { title } } }`,
    { id: session.objectId },
  );
  assert.equal(updateChatSession.chatSession.title, 'Lisbon');

  // Someone else cannot read it: a Parse error in `errors`, HTTP 200.
  const bob = await signUp(uniqueClass('b').toLowerCase());
  await assert.rejects(
    client({ 'X-Parse-Session-Token': bob.token }).request(`query($id: ID!) { chatSession(id: $id) { title } }`, { id: session.id }),
    (error) => error instanceof ClientError && error.response.status === 200 && error.response.errors[0].extensions.code === 101,
  );
  // A query that cannot run: HTTP 400 with a GRAPHQL_* code.
  await assert.rejects(
    as.request('{ chatSessions { nope } }'),
    (error) => error instanceof ClientError && error.response.status === 400 && error.response.errors[0].extensions.code === 'GRAPHQL_VALIDATION_FAILED',
  );
  const { deleteChatSession } = await as.request(
    `mutation($id: ID!) { deleteChatSession(input: {id: $id}) { chatSession { objectId } } }`,
    { id: session.id },
  );
  assert.equal(deleteChatSession.chatSession.objectId, session.objectId);
});

test('createFile uploads with the GraphQL multipart request spec', async () => {
  const alice = await signUp(uniqueClass('f').toLowerCase());
  const operations = JSON.stringify({
    query: 'mutation($file: Upload!) { createFile(input: {upload: $file}) { fileInfo { name url } } }',
    variables: { file: null },
  });
  const form = new FormData();
  form.append('operations', operations);
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', new Blob(['hello file'], { type: 'text/plain' }), 'hello.txt');
  const res = await fetch(graphqlUrl(), {
    method: 'POST',
    headers: { 'X-Parse-Application-Id': srv.appId, 'X-Parse-Session-Token': alice.token },
    body: form,
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  const info = body.data.createFile.fileInfo;
  assert.match(info.name, /hello\.txt$/);
  const file = await fetch(info.url);
  assert.equal(await file.text(), 'hello file');
});

test('graphql-ws subscriptions see what the subscriber may read, as it happens', async () => {
  const Note = uniqueClass('Note');
  await new Parse.Schema(Note).addString('text').addString('room').save(null, MASTER);
  const alice = await signUp(uniqueClass('s').toLowerCase());
  const ws = createClient({
    url: graphqlUrl().replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { 'X-Parse-Application-Id': srv.appId, 'X-Parse-Session-Token': alice.token },
  });
  const field = Note.charAt(0).toLowerCase() + Note.slice(1);
  const events = [];
  const done = new Promise((resolve, reject) => {
    const stop = ws.subscribe(
      { query: `subscription { ${field}(where: {room: {equalTo: "r1"}}) { event node { text } } }` },
      {
        next: ({ data, errors }) => {
          if (errors) return reject(new Error(JSON.stringify(errors)));
          events.push(data[field]);
          if (events.length === 2) {
            stop();
            resolve();
          }
        },
        error: reject,
        complete: () => {},
      },
    );
  });
  await new Promise((r) => setTimeout(r, 300));
  // Hidden from Alice by its ACL: never sent to her.
  const hidden = new Parse.Object(Note, { room: 'r1', text: 'secret' });
  hidden.setACL(new Parse.ACL());
  await hidden.save(null, MASTER);
  await new Parse.Object(Note).save({ room: 'r2', text: 'elsewhere' }, MASTER);
  const note = await new Parse.Object(Note).save({ room: 'r1', text: 'hello' }, MASTER);
  note.set('text', 'edited');
  await note.save(null, MASTER);
  await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no events')), 5000))]);
  assert.deepEqual(events, [
    { event: 'CREATE', node: { text: 'hello' } },
    { event: 'UPDATE', node: { text: 'edited' } },
  ]);
  await ws.dispose();
});
