// Cloud Code through the official JS SDK: the Parse Server style `tests/fixtures/cloud/main.js`
// (README "Cloud Code") answers Parse.Cloud.run, its validators and thrown errors keep their
// codes, its triggers shape objects saved and queried with the SDK, beforeLogin vetoes a
// log-in, and a job started with Parse.Cloud.startJob records its end in _JobStatus.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Parse, spawnServer, expectParseError, MASTER, REPO_ROOT, sleep } from './harness.mjs';

let server;

before(
  async () => {
    if (process.env.PARLOR_SDK_TARGET_URL) {
      throw new Error('cloud.test.mjs needs a spawned server (it loads the fixture cloud code)');
    }
    server = await spawnServer({
      extraArgs: [
        '--cloud', path.join(REPO_ROOT, 'tests/fixtures/cloud/main.js'),
        '--cloud-runtimes', '2',
        '--allow-client-class-creation', 'true',
      ],
    });
    Parse.initialize(server.appId, undefined, server.masterKey);
    Parse.serverURL = server.url;
  },
  { timeout: 60_000 },
);

after(async () => {
  if (server) await server.stop();
});

test('Parse.Cloud.run answers results and keeps error codes', async () => {
  assert.equal(await Parse.Cloud.run('hello', { name: 'SDK' }), 'Hello SDK!');
  const when = new Date('2026-01-02T03:04:05.000Z');
  const echoed = await Parse.Cloud.run('echo', { when, n: [1, 2] });
  assert.ok(echoed.when instanceof Date);
  assert.equal(echoed.when.toISOString(), when.toISOString());
  await expectParseError(Parse.Cloud.run('fail', { how: 'custom' }), 9001, assert);
  await expectParseError(Parse.Cloud.run('fail', { how: 'string' }), 141, assert);
  await expectParseError(Parse.Cloud.run('typed', {}), 142, assert);
  await expectParseError(Parse.Cloud.run('nope'), 141, assert);
});

test('a function returns Parse objects and runs with the caller rights', async () => {
  const user = await Parse.User.signUp(`cloud_${Date.now()}`, 'pw');
  const note = await Parse.Cloud.run('createNote', { text: 'mine', private: true }, { sessionToken: user.getSessionToken() });
  assert.ok(note instanceof Parse.Object);
  assert.equal(note.className, 'Note');
  assert.equal(note.get('text'), 'mine');
  assert.deepEqual(note.get('tags'), ['a', 'b']);
  assert.equal(await Parse.Cloud.run('countNotes', {}, { sessionToken: user.getSessionToken() }), 1);
  // Anonymous: the note's ACL hides it inside cloud code too, unless the function uses the master key.
  assert.equal(await Parse.Cloud.run('countNotes', {}), 0);
  assert.equal(await Parse.Cloud.run('countNotes', { asMaster: true }), 1);
  await Parse.User.logOut();
});

test('triggers shape what the SDK saves and finds', async () => {
  const Task = Parse.Object.extend('Task');
  const task = new Task({ title: 'Write Tests' });
  await task.save();
  assert.equal(task.get('slug'), 'write-tests');
  task.set('title', 'Write More Tests');
  await task.save();
  assert.equal(task.get('edits'), 1);
  await expectParseError(new Task({ title: 'reject' }).save(), 162, assert);
  await expectParseError(new Task({}).save(), 142, assert);
  const crash = await new Task({ title: 'crash after' }).save();
  assert.ok(crash.id, 'a throwing afterSave leaves the save successful');
  const found = await new Parse.Query('Task').equalTo('objectId', task.id).first();
  assert.equal(found.get('shout'), 'WRITE MORE TESTS');
  const locked = await new Task({ title: 'Keep', locked: true }).save();
  await expectParseError(locked.destroy(), 119, assert);
});

test('a save\'s context reaches beforeSave and afterSave, whose changes join the answer', async () => {
  const note = new Parse.Object('Note');
  note.set('title', 'sdk');
  await note.save(null, { context: { tag: 'sdk' } });
  assert.equal(note.get('contextBefore'), 'sdk');
  assert.deepEqual(note.get('afterContext'), { tag: 'sdk', seenBefore: true });
  // Only the answer carries what afterSave set: the stored object does not.
  const stored = await new Parse.Query('Note').get(note.id, { useMasterKey: true });
  assert.equal(stored.get('afterContext'), undefined);
  assert.equal(stored.get('contextBefore'), 'sdk');
});

test('beforeLogin vetoes a banned user', async () => {
  const name = `banned_${Date.now()}`;
  const user = await Parse.User.signUp(name, 'pw');
  user.set('banned', true);
  await user.save(null, MASTER);
  await Parse.User.logOut();
  await expectParseError(Parse.User.logIn(name, 'pw'), 101, assert);
});

test('a job started with the master key records its end', async () => {
  await new (Parse.Object.extend('Task'))({ title: 'Old', archived: true }).save();
  const jobId = await Parse.Cloud.startJob('cleanup', { what: 'tasks' });
  let status;
  for (let i = 0; i < 100; i++) {
    status = await new Parse.Query('_JobStatus').get(jobId, MASTER);
    if (status.get('status') !== 'running') break;
    await sleep(50);
  }
  assert.equal(status.get('status'), 'succeeded');
  assert.match(status.get('message'), /^removed \d+ of tasks$/);
});
