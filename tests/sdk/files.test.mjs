// Parse.File and Parse.Config through the official SDK (parse-protocol.md §13).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Parse, useServer, MASTER, uniqueClass, expectParseError } from './harness.mjs';

let user;
const srv = useServer(async () => {
  const suffix = randomBytes(4).toString('hex');
  user = new Parse.User();
  user.set({ username: `files_${suffix}`, password: `Files-pw-${suffix}` });
  await user.signUp();
});

test('a logged-in user saves a Parse.File; an object keeps it; its url serves the bytes', async () => {
  const file = new Parse.File('hello.txt', { base64: Buffer.from('hello parlor').toString('base64') }, 'text/plain');
  await file.save({ sessionToken: user.getSessionToken() });
  assert.match(file.name(), /^[0-9a-f]{32}_hello\.txt$/);
  assert.ok(file.url().startsWith(`${srv.url}/files/`), file.url());
  const Doc = uniqueClass('Doc');
  const doc = new Parse.Object(Doc);
  doc.set('attachment', file);
  await doc.save(null, MASTER);
  const fetched = await new Parse.Query(Doc).get(doc.id, MASTER);
  assert.ok(fetched.get('attachment') instanceof Parse.File);
  assert.equal(fetched.get('attachment').name(), file.name());
  const res = await fetch(fetched.get('attachment').url());
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'hello parlor');
});

test('an anonymous upload is refused with FILE_SAVE_ERROR (130)', async () => {
  const file = new Parse.File('nope.txt', { base64: Buffer.from('x').toString('base64') });
  await expectParseError(file.save(), Parse.Error.FILE_SAVE_ERROR, assert);
});

test('Parse.Config.get returns the parameters the master key set, without masterKeyOnly ones', async () => {
  const put = await srv.rest('PUT', '/config', {
    master: true,
    body: { params: { welcome: 'hi', limit: 3, hidden: true }, masterKeyOnly: { hidden: true } },
  });
  assert.deepEqual(put.json, { result: true });
  const config = await Parse.Config.get();
  assert.equal(config.get('welcome'), 'hi');
  assert.equal(config.get('limit'), 3);
  assert.equal(config.get('hidden'), undefined);
  const withMaster = await Parse.Config.get(MASTER);
  assert.equal(withMaster.get('hidden'), true);
});
