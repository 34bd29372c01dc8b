// GET /openapi.json: the OpenAPI 3.1 description generated from the live schema, checked by a
// real OpenAPI validator, and followed as a client would (its paths and bodies work).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Parse, useServer, uniqueClass, createClass, rest } from './harness.mjs';

const Trip = uniqueClass('Trip');

const srv = useServer(async () => {
  await createClass(Trip, {
    city: { type: 'String', required: true },
    days: { type: 'Number', defaultValue: 3 },
    start: { type: 'Date' },
    guide: { type: 'Pointer', targetClass: '_User' },
  });
});

async function description() {
  const r = await rest(srv, 'GET', '/openapi.json', { master: true });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

test('the description is a valid OpenAPI 3.1 document', async () => {
  const doc = await description();
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(doc.servers[0].url, srv.url);
});

test('it lists each class with typed bodies, the user routes and the cloud functions', async () => {
  const doc = await description();
  for (const path of [`/classes/${Trip}`, `/classes/${Trip}/{objectId}`, '/users', '/login', '/logout',
    '/users/me', '/batch', '/files/{filename}', '/functions/generate', '/classes/Message', '/classes/ChatSession']) {
    assert.ok(doc.paths[path], `missing ${path}`);
  }
  const input = doc.components.schemas[`${Trip}Input`];
  assert.deepEqual(input.required, ['city']);
  assert.equal(doc.components.schemas[Trip].properties.days.default, 3);
  assert.equal(doc.components.schemas[Trip].properties.guide.properties.className.const, '_User');
  // Bookkeeping classes stay out, as in /schemas.
  assert.ok(!Object.keys(doc.paths).some((path) => path.includes('_GlobalConfig')));
});

test('a client following the description creates and reads an object', async () => {
  const doc = await description();
  const create = doc.paths[`/classes/${Trip}`].post;
  assert.ok(create.responses['201']);
  const made = await rest(srv, 'POST', `/classes/${Trip}`, { master: true, body: { city: 'Lisbon' } });
  assert.equal(made.status, 201, made.text);
  const got = await rest(srv, 'GET', `/classes/${Trip}/${made.json.objectId}`, { master: true });
  assert.equal(got.json.city, 'Lisbon');
  assert.equal(got.json.days, 3);
});

test('only the master key gets the description, as for /schemas', async () => {
  const anonymous = await rest(srv, 'GET', '/openapi.json');
  assert.equal(anonymous.status, 403);
  const user = await Parse.User.signUp(`u${Date.now()}`, 'pw');
  const asUser = await rest(srv, 'GET', '/openapi.json', { sessionToken: user.getSessionToken() });
  assert.equal(asUser.status, 403);
});
