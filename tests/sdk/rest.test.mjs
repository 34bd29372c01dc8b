// Raw HTTP checks with fetch() for what the SDK cannot express: the JS SDK body envelope,
// /health, CORS, the 403 for a missing app id, REST create/status codes, raw batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, uniqueClass, createClass } from './harness.mjs';

const Note = uniqueClass('Note');
const ids = {};

const srv = useServer(async () => {
  await createClass(Note, { title: { type: 'String' }, n: { type: 'Number' } });
  for (const [i, t] of ['one', 'two', 'three'].entries()) {
    ids[t] = (await new Parse.Object(Note).save({ title: t, n: i + 1 })).id;
  }
});

async function raw(method, p, { headers = {}, body } = {}) {
  const res = await fetch(srv.url + p, { method, headers, body });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

test('GET /health answers 200 {"status":"ok"} without any Parse header', async () => {
  const r = await raw('GET', '/health');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok' });
  assert.match(r.headers.get('content-type') || '', /application\/json/);
});

test('a request without an app id (header or body) gets 403 {"error":"unauthorized"}', async () => {
  const r = await raw('GET', `/classes/${Note}`);
  assert.equal(r.status, 403);
  assert.deepEqual(r.json, { error: 'unauthorized' });
});

test('a request with a wrong app id gets 403 {"error":"unauthorized"}', async () => {
  const r = await raw('GET', `/classes/${Note}`, { headers: { 'X-Parse-Application-Id': 'wrong-app' } });
  assert.equal(r.status, 403);
  assert.deepEqual(r.json, { error: 'unauthorized' });
  const env = await raw('POST', `/classes/${Note}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ _method: 'GET', _ApplicationId: 'wrong-app' }),
  });
  assert.equal(env.status, 403);
  assert.deepEqual(env.json, { error: 'unauthorized' });
});

test('CORS preflight: OPTIONS on an API path answers 200 with the CORS headers and needs no auth', async () => {
  const r = await raw('OPTIONS', `/classes/${Note}`, {
    headers: {
      Origin: 'http://example.test',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'x-parse-application-id, x-parse-session-token, content-type',
    },
  });
  assert.equal(r.status, 200);
  const origin = r.headers.get('access-control-allow-origin');
  assert.ok(origin === '*' || origin === 'http://example.test', `allow-origin: ${origin}`);
  const methods = (r.headers.get('access-control-allow-methods') || '').toUpperCase().split(/\s*,\s*/);
  for (const m of ['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS']) assert.ok(methods.includes(m), `allow-methods lacks ${m}: ${methods}`);
  const allowHeaders = (r.headers.get('access-control-allow-headers') || '').toLowerCase().split(/\s*,\s*/);
  for (const h of ['x-parse-application-id', 'x-parse-session-token', 'x-parse-master-key', 'x-parse-rest-api-key', 'content-type']) {
    assert.ok(allowHeaders.includes(h), `allow-headers lacks ${h}: ${allowHeaders}`);
  }
});

test('an ordinary API response carries Access-Control-Allow-Origin too', async () => {
  const r = await srv.rest('GET', `/classes/${Note}`, { headers: { Origin: 'http://example.test' } });
  assert.equal(r.status, 200);
  const origin = r.headers.get('access-control-allow-origin');
  assert.ok(origin === '*' || origin === 'http://example.test', `allow-origin: ${origin}`);
});

test('JS SDK envelope: POST text/plain with _method:"GET" and _ApplicationId answers like GET with headers', async () => {
  const where = { n: { $gte: 2 } };
  const viaGet = await srv.rest('GET', `/classes/${Note}?where=${encodeURIComponent(JSON.stringify(where))}&order=-n`);
  assert.equal(viaGet.status, 200);
  assert.deepEqual(viaGet.json.results.map((o) => o.title), ['three', 'two']);
  const envelope = {
    where,
    order: '-n',
    _method: 'GET',
    _ApplicationId: srv.appId,
    _ClientVersion: 'js8.6.2',
    _InstallationId: '3f0d1a52-7d8f-4b8e-9a55-6a5a3c0f7e11',
  };
  const viaPost = await raw('POST', `/classes/${Note}`, { headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify(envelope) });
  assert.equal(viaPost.status, 200, viaPost.text);
  assert.deepEqual(viaPost.json, viaGet.json);
  // `where` as a JSON string gives the same answer
  const viaString = await raw('POST', `/classes/${Note}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ ...envelope, where: JSON.stringify(where) }),
  });
  assert.equal(viaString.status, 200, viaString.text);
  assert.deepEqual(viaString.json, viaGet.json);
});

test('JS SDK envelope: count and limit travel in the body like query parameters', async () => {
  const r = await raw('POST', `/classes/${Note}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ where: { title: { $in: ['one', 'two', 'three'] } }, count: 1, limit: 0, _method: 'GET', _ApplicationId: srv.appId }),
  });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { results: [], count: 3 });
});

test('JS SDK envelope: a create stores the fields but none of the _ApplicationId/_ClientVersion/_InstallationId keys', async () => {
  const r = await raw('POST', `/classes/${Note}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ title: 'enveloped', n: 9, _ApplicationId: srv.appId, _ClientVersion: 'js8.6.2', _InstallationId: '3f0d1a52-7d8f-4b8e-9a55-6a5a3c0f7e11' }),
  });
  assert.equal(r.status, 201, r.text);
  const id = r.json.objectId;
  const got = await srv.rest('GET', `/classes/${Note}/${id}`);
  assert.equal(got.status, 200);
  assert.deepEqual(Object.keys(got.json).sort(), ['createdAt', 'n', 'objectId', 'title', 'updatedAt']);
});

test('JS SDK envelope: _MasterKey in the body grants master rights (create in a class that does not exist)', async () => {
  const C = uniqueClass('EnvMaster');
  const noKey = await raw('POST', `/classes/${C}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ x: 1, _ApplicationId: srv.appId }),
  });
  assert.equal(noKey.status, 400);
  assert.equal(noKey.json.code, 119);
  const r = await raw('POST', `/classes/${C}`, {
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ x: 1, _ApplicationId: srv.appId, _MasterKey: srv.masterKey }),
  });
  assert.equal(r.status, 201, r.text);
});

test('REST create answers 201, Location …/classes/X/<id>, body exactly {objectId, createdAt}', async () => {
  const r = await srv.rest('POST', `/classes/${Note}`, { body: { title: 'rest', n: 4 } });
  assert.equal(r.status, 201);
  assert.deepEqual(Object.keys(r.json).sort(), ['createdAt', 'objectId']);
  assert.match(r.json.objectId, /^[A-Za-z0-9]{10}$/);
  assert.match(r.json.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok((r.headers.get('location') || '').endsWith(`/classes/${Note}/${r.json.objectId}`), `Location: ${r.headers.get('location')}`);
});

test('error statuses: a missing object is 404 {"code":101,"error":"Object not found."}; a type mismatch is 400 with code 111', async () => {
  const r = await srv.rest('GET', `/classes/${Note}/doesNotExi`);
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, { code: 101, error: 'Object not found.' });
  const m = await srv.rest('POST', `/classes/${Note}`, { body: { n: 'NaN' } });
  assert.equal(m.status, 400);
  assert.equal(m.json.code, 111);
  assert.equal(typeof m.json.error, 'string');
});

test('the schemas API without the master key is refused with 403', async () => {
  const r = await srv.rest('GET', `/schemas/${Note}`);
  assert.equal(r.status, 403);
  assert.equal(typeof r.json.error, 'string');
});

test('POST /batch: create, update and a delete of a missing object → 200 with per-item results in order', async () => {
  const mount = new URL(srv.url).pathname;
  const r = await srv.rest('POST', '/batch', {
    body: {
      requests: [
        { method: 'POST', path: `${mount}/classes/${Note}`, body: { title: 'batched' } },
        { method: 'PUT', path: `${mount}/classes/${Note}/${ids.one}`, body: { n: { __op: 'Increment', amount: 10 } } },
        { method: 'DELETE', path: `${mount}/classes/${Note}/doesNotExi` },
      ],
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.json.length, 3);
  assert.match(r.json[0].success.objectId, /^[A-Za-z0-9]{10}$/);
  assert.equal(r.json[1].success.n, 11);
  assert.ok(r.json[1].success.updatedAt);
  assert.equal(r.json[2].error.code, 101);
});
