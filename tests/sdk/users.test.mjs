// Users, sessions, ACLs and roles through the Parse JS SDK (protocol §5–§7): signUp, logIn,
// current, become, logOut, saving one's own user, password changes, anonymous users,
// Parse.ACL, Parse.Session and Parse.Role.
//
// The Node SDK sends the same `_InstallationId` on every request of this process, so a new
// log-in of a user ends that user's previous session from this process (§5.3), as Parse
// Server does. Tests therefore use a user's newest token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Parse, useServer, MASTER, uniqueClass, createClass, expectParseError } from './harness.mjs';

const Note = uniqueClass('Note');
const PASSWORD = 'Sdk-Secret-pw1';

const srv = useServer(async () => {
  Parse.User.enableUnsafeCurrentUser();
  await createClass(Note, { text: { type: 'String' } });
});

const suffix = () => randomBytes(4).toString('hex');

/** A fresh username (and email) for each call. */
function newName(base) {
  const name = `${base}_${suffix()}`;
  return { username: name, email: `${name}@example.test` };
}

/** Signs up a user without touching the SDK's current user; returns the saved Parse.User. */
async function signUpDetached(base) {
  const { username, email } = newName(base);
  const user = new Parse.User();
  user.set({ username, password: PASSWORD, email });
  // A user saved with a new password is a sign-up; `save` does not set the current user.
  await user.save();
  assert.ok(user.getSessionToken(), 'a detached sign-up returns a session token');
  return user;
}

/** Forgets the current user (logging out when its token still works). */
async function clearCurrentUser() {
  await Parse.User.logOut().catch(() => {});
  assert.equal(Parse.User.current(), null);
}

/** GET /users/me with a token through raw REST. */
function me(token) {
  return srv.rest('GET', '/users/me', { sessionToken: token });
}

test('Parse.User.signUp makes the current user, with an r: session token and no password', async () => {
  await clearCurrentUser();
  const { username, email } = newName('alice');
  const user = await Parse.User.signUp(username, PASSWORD, { email, displayName: 'Alice' });
  assert.match(user.id, /^[A-Za-z0-9]{10}$/);
  assert.match(user.getSessionToken(), /^r:[0-9a-f]{32}$/);
  assert.equal(user.get('password'), undefined);
  assert.ok(user.createdAt instanceof Date);
  assert.equal(user.get('role'), 'participant', 'the template default is merged from the response');
  const current = Parse.User.current();
  assert.ok(current, 'signUp sets the current user');
  assert.equal(current.id, user.id);
  assert.equal(current.getSessionToken(), user.getSessionToken());
  assert.ok(current.isCurrent());
  assert.ok(current.authenticated());
  const r = await me(user.getSessionToken());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.username, username);
  assert.ok(!r.text.includes(PASSWORD));
  assert.ok(!r.text.includes('_hashed_password') && !r.text.includes('$argon2'));
  await clearCurrentUser();
});

test('signUp with a taken username (any letter case) or email is refused with 202 / 203', async () => {
  const first = await signUpDetached('taken');
  const again = new Parse.User();
  again.set({ username: first.getUsername().toUpperCase(), password: 'x' });
  await expectParseError(again.signUp(), Parse.Error.USERNAME_TAKEN, assert);
  const sameEmail = new Parse.User();
  sameEmail.set({ username: newName('other').username, password: 'x', email: first.getEmail() });
  await expectParseError(sameEmail.signUp(), Parse.Error.EMAIL_TAKEN, assert);
  // The SDK refuses an empty password itself; on the wire a missing one is 201.
  const r = await srv.rest('POST', '/users', { body: { username: newName('nopw').username } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.code, Parse.Error.PASSWORD_MISSING);
  assert.equal(Parse.User.current(), null);
});

test('Parse.User.logIn returns the full user with a new session and sets the current user', async () => {
  const signed = await signUpDetached('login');
  await clearCurrentUser();
  const user = await Parse.User.logIn(signed.getUsername(), PASSWORD);
  assert.equal(user.id, signed.id);
  assert.equal(user.getUsername(), signed.getUsername());
  assert.equal(user.getEmail(), signed.getEmail());
  assert.match(user.getSessionToken(), /^r:[0-9a-f]{32}$/);
  assert.notEqual(user.getSessionToken(), signed.getSessionToken());
  assert.equal(user.get('password'), undefined);
  assert.equal(Parse.User.current().id, signed.id);
  // By email too (PS matches username == x OR email == x).
  const byEmail = await Parse.User.logIn(signed.getEmail(), PASSWORD);
  assert.equal(byEmail.id, signed.id);
  assert.equal(Parse.User.current().getSessionToken(), byEmail.getSessionToken());
  await clearCurrentUser();
});

test('a wrong password and an unknown user both fail with 101', async () => {
  const signed = await signUpDetached('wrong');
  await clearCurrentUser();
  const a = await expectParseError(Parse.User.logIn(signed.getUsername(), 'nope'), Parse.Error.OBJECT_NOT_FOUND, assert);
  const b = await expectParseError(Parse.User.logIn(`ghost_${suffix()}`, 'nope'), Parse.Error.OBJECT_NOT_FOUND, assert);
  assert.equal(a.message, 'Invalid username/password.');
  assert.equal(b.message, a.message);
  assert.equal(Parse.User.current(), null);
});

test('Parse.User.become(token) loads the user behind a session token', async () => {
  const signed = await signUpDetached('become');
  await clearCurrentUser();
  const user = await Parse.User.become(signed.getSessionToken());
  assert.equal(user.id, signed.id);
  assert.equal(user.getUsername(), signed.getUsername());
  assert.equal(user.getSessionToken(), signed.getSessionToken());
  assert.equal(Parse.User.current().id, signed.id);
  await clearCurrentUser();
  await expectParseError(Parse.User.become('r:00000000000000000000000000000000'), Parse.Error.INVALID_SESSION_TOKEN, assert);
  assert.equal(Parse.User.current(), null);
});

test('Parse.User.logOut clears the current user and the token then fails with 209', async () => {
  const { username } = newName('logout');
  const user = await Parse.User.signUp(username, PASSWORD);
  const token = user.getSessionToken();
  assert.equal((await me(token)).status, 200);
  await Parse.User.logOut();
  assert.equal(Parse.User.current(), null);
  const r = await me(token);
  assert.equal(r.status, 400, r.text);
  assert.deepEqual(r.json, { code: 209, error: 'Invalid session token' });
  // The dead token breaks SDK calls too, even public reads.
  await expectParseError(new Parse.Query(Note).find({ sessionToken: token }), Parse.Error.INVALID_SESSION_TOKEN, assert);
  await expectParseError(Parse.User.become(token), Parse.Error.INVALID_SESSION_TOKEN, assert);
});

test('the current user saves its own fields; another user cannot (206)', async () => {
  const other = await signUpDetached('victim');
  const { username } = newName('self');
  const user = await Parse.User.signUp(username, PASSWORD);
  user.set('displayName', 'Self Made');
  await user.save();
  const stored = await new Parse.Query(Parse.User).get(user.id, MASTER);
  assert.equal(stored.get('displayName'), 'Self Made');
  // The SDK sends the current user's token, which is not the other user's.
  const foreign = Parse.User.createWithoutData(other.id);
  foreign.set('displayName', 'hacked');
  await expectParseError(foreign.save(), Parse.Error.SESSION_MISSING, assert);
  await expectParseError(foreign.destroy(), Parse.Error.SESSION_MISSING, assert);
  const intact = await new Parse.Query(Parse.User).get(other.id, MASTER);
  assert.equal(intact.get('displayName'), undefined);
  // Clients cannot verify their own email.
  user.set('emailVerified', true);
  await expectParseError(user.save(), Parse.Error.OPERATION_FORBIDDEN, assert);
  user.revert('emailVerified');
  await clearCurrentUser();
});

test('a password change through setPassword + save keeps the session that made it and ends the others (as Parse Server)', async () => {
  const { username } = newName('pwchange');
  const user = await Parse.User.signUp(username, PASSWORD);
  const token = user.getSessionToken();
  // A second session of the same user, from another device.
  const other = await srv.rest('POST', '/login', {
    body: { username, password: PASSWORD },
    headers: { 'X-Parse-Installation-Id': 'another-device' },
  });
  assert.equal(other.status, 200, other.text);
  const otherToken = other.json.sessionToken;
  user.setPassword('Brand-new-pw2');
  await user.save();
  assert.equal(Parse.User.current().getSessionToken(), token, 'the current user keeps its token');
  const live = await me(token);
  assert.equal(live.status, 200, live.text);
  assert.equal(live.json.objectId, user.id);
  assert.ok(!live.text.includes('Brand-new-pw2') && !live.text.includes('$argon2'), live.text);
  const dead = await me(otherToken);
  assert.equal(dead.status, 400, dead.text);
  assert.equal(dead.json.code, 209);
  await clearCurrentUser();
  await expectParseError(Parse.User.logIn(username, PASSWORD), Parse.Error.OBJECT_NOT_FOUND, assert);
  const again = await Parse.User.logIn(username, 'Brand-new-pw2');
  assert.equal(again.id, user.id);
  await clearCurrentUser();
});

test('Parse.User.requestPasswordReset resolves for known and unknown addresses alike (no account discovery)', async () => {
  const email = `reset_${Date.now()}@example.test`;
  const user = new Parse.User();
  user.set({ username: `reset_${Date.now()}`, password: 'Reset-pw1', email });
  await user.signUp();
  await clearCurrentUser();
  assert.deepEqual(await Parse.User.requestPasswordReset(email), {});
  assert.deepEqual(await Parse.User.requestPasswordReset('nobody@example.test'), {});
  await expectParseError(Parse.User.requestPasswordReset(''), Parse.Error.EMAIL_MISSING, assert);
});

test('Parse.AnonymousUtils.logIn makes an anonymous user; the same authData logs the same user in', async () => {
  await clearCurrentUser();
  const anon = await Parse.AnonymousUtils.logIn();
  assert.match(anon.id, /^[A-Za-z0-9]{10}$/);
  assert.ok(Parse.AnonymousUtils.isLinked(anon));
  assert.equal(anon.getUsername().length, 25, `generated username ${anon.getUsername()}`);
  assert.match(anon.getSessionToken(), /^r:[0-9a-f]{32}$/);
  assert.equal(Parse.User.current().id, anon.id);
  assert.equal((await me(anon.getSessionToken())).status, 200);
  // An anonymous user can save its own fields.
  anon.set('displayName', 'Guest');
  await anon.save();
  await clearCurrentUser();

  const id = randomUUID();
  const first = await Parse.User.logInWith('anonymous', { authData: { id } });
  const firstToken = first.getSessionToken();
  await clearCurrentUser();
  const second = await Parse.User.logInWith('anonymous', { authData: { id } });
  assert.equal(second.id, first.id, 'the same anonymous id is the same user');
  assert.equal(second.getUsername(), first.getUsername());
  assert.match(second.getSessionToken(), /^r:[0-9a-f]{32}$/);
  assert.notEqual(second.getSessionToken(), firstToken);
  assert.notEqual(second.id, anon.id);
  await clearCurrentUser();

  const unknown = srv.rest('POST', '/users', { body: { authData: { myspace: { id: 'x', access_token: 'y' } } } });
  const r = await unknown;
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.code, Parse.Error.UNSUPPORTED_SERVICE);
});

test('Parse.ACL: an object readable by A only is invisible to B', async () => {
  await clearCurrentUser();
  const a = await signUpDetached('acl_a');
  const b = await signUpDetached('acl_b');
  const acl = new Parse.ACL();
  acl.setReadAccess(a, true);
  const secret = new Parse.Object(Note);
  secret.set({ text: 'for A only' });
  secret.setACL(acl);
  await secret.save(null, MASTER);
  const open = await new Parse.Object(Note).save({ text: 'public' }, MASTER);

  const asA = { sessionToken: a.getSessionToken() };
  const asB = { sessionToken: b.getSessionToken() };
  const seenByA = await new Parse.Query(Note).containedIn('objectId', [secret.id, open.id]).find(asA);
  assert.deepEqual(seenByA.map((o) => o.id).sort(), [secret.id, open.id].sort());
  const fetched = await new Parse.Query(Note).get(secret.id, asA);
  assert.equal(fetched.get('text'), 'for A only');
  assert.equal(fetched.getACL().getReadAccess(a.id), true);
  assert.equal(fetched.getACL().getPublicReadAccess(), false);

  const seenByB = await new Parse.Query(Note).containedIn('objectId', [secret.id, open.id]).find(asB);
  assert.deepEqual(seenByB.map((o) => o.id), [open.id]);
  const countByB = await new Parse.Query(Note).containedIn('objectId', [secret.id, open.id]).count(asB);
  assert.equal(countByB, 1);
  await expectParseError(new Parse.Query(Note).get(secret.id, asB), Parse.Error.OBJECT_NOT_FOUND, assert);
  const anonymous = await new Parse.Query(Note).containedIn('objectId', [secret.id, open.id]).find();
  assert.deepEqual(anonymous.map((o) => o.id), [open.id]);
  // Not writable by A either: read access only.
  const edit = Parse.Object.extend(Note).createWithoutData(secret.id);
  edit.set('text', 'changed');
  await expectParseError(edit.save(null, asA), Parse.Error.OBJECT_NOT_FOUND, assert);
});

test('Parse.Session.current() and a Parse.Session query return only the caller\'s sessions', async () => {
  await clearCurrentUser();
  const other = await signUpDetached('sess_other');
  const { username } = newName('sess');
  const user = await Parse.User.signUp(username, PASSWORD);
  const session = await Parse.Session.current();
  assert.ok(session instanceof Parse.Session);
  assert.equal(session.getSessionToken(), user.getSessionToken());
  assert.equal(session.get('user').id, user.id);
  assert.equal(session.get('createdWith').action, 'signup');
  const expiresAt = session.get('expiresAt');
  assert.ok(expiresAt instanceof Date);
  const year = Date.now() + 365 * 24 * 3600 * 1000;
  assert.ok(Math.abs(expiresAt.getTime() - year) < 120_000, `expiresAt ${expiresAt.toISOString()}`);

  const mine = await new Parse.Query(Parse.Session).find({ sessionToken: user.getSessionToken() });
  assert.ok(mine.length >= 1);
  for (const s of mine) assert.equal(s.get('user').id, user.id);
  assert.ok(mine.some((s) => s.id === session.id));
  const theirs = await new Parse.Query(Parse.Session).find({ sessionToken: other.getSessionToken() });
  assert.ok(theirs.length >= 1);
  for (const s of theirs) assert.equal(s.get('user').id, other.id);
  assert.ok(!theirs.some((s) => s.id === session.id));
  await expectParseError(
    new Parse.Query(Parse.Session).get(session.id, { sessionToken: other.getSessionToken() }),
    Parse.Error.OBJECT_NOT_FOUND,
    assert,
  );
  const all = await new Parse.Query(Parse.Session).containedIn('user', [user, other]).find(MASTER);
  assert.ok(all.some((s) => s.get('user').id === other.id) && all.some((s) => s.get('user').id === user.id));
  await clearCurrentUser();
  // No current user: no current session.
  await assert.rejects(Parse.Session.current());
});

test('Parse.Role: a user creates a role with an ACL and adds a member', async () => {
  await clearCurrentUser();
  const owner = await signUpDetached('role_owner');
  const member = await signUpDetached('role_member');
  const name = `Mods_${suffix()}`;
  const acl = new Parse.ACL(owner);
  acl.setPublicReadAccess(true);
  const role = new Parse.Role(name, acl);
  role.getUsers().add(member);
  await role.save(null, { sessionToken: owner.getSessionToken() });
  assert.match(role.id, /^[A-Za-z0-9]{10}$/);

  const found = await new Parse.Query(Parse.Role).equalTo('name', name).first({ sessionToken: member.getSessionToken() });
  assert.ok(found, 'the role is publicly readable');
  assert.equal(found.getName(), name);
  assert.equal(found.getACL().getWriteAccess(owner.id), true);
  const members = await found.getUsers().query().find(MASTER);
  assert.deepEqual(members.map((u) => u.id), [member.id]);
  // Only the owner may write the role.
  const stranger = await signUpDetached('role_stranger');
  found.getUsers().add(stranger);
  await expectParseError(found.save(null, { sessionToken: stranger.getSessionToken() }), Parse.Error.OBJECT_NOT_FOUND, assert);
  const after = await new Parse.Query(Parse.Role).get(role.id, MASTER);
  assert.deepEqual((await after.getUsers().query().find(MASTER)).map((u) => u.id), [member.id]);
  // A role needs an ACL (§6: 111 "ACL is required.").
  const noAcl = new Parse.Role();
  noAcl.setName(`NoAcl_${suffix()}`);
  await expectParseError(noAcl.save(null, MASTER), Parse.Error.INCORRECT_TYPE, assert);
});

test('an object with setRoleReadAccess("Mods…") is readable by a member of the role, not by others', async () => {
  await clearCurrentUser();
  const member = await signUpDetached('mod_member');
  const outsider = await signUpDetached('mod_outsider');
  const name = `Mods_${suffix()}`;
  const roleAcl = new Parse.ACL();
  roleAcl.setPublicReadAccess(true);
  const role = new Parse.Role(name, roleAcl);
  role.getUsers().add(member);
  await role.save(null, MASTER);

  const acl = new Parse.ACL();
  acl.setRoleReadAccess(name, true);
  const note = new Parse.Object(Note);
  note.set({ text: 'moderators only' });
  note.setACL(acl);
  await note.save(null, MASTER);
  assert.deepEqual(note.getACL().toJSON(), { [`role:${name}`]: { read: true } });

  const byMember = await new Parse.Query(Note).equalTo('objectId', note.id).find({ sessionToken: member.getSessionToken() });
  assert.deepEqual(byMember.map((o) => o.id), [note.id], 'a member of the role reads the object');
  const got = await new Parse.Query(Note).get(note.id, { sessionToken: member.getSessionToken() });
  assert.equal(got.get('text'), 'moderators only');
  const byOutsider = await new Parse.Query(Note).equalTo('objectId', note.id).find({ sessionToken: outsider.getSessionToken() });
  assert.deepEqual(byOutsider, []);
  await expectParseError(
    new Parse.Query(Note).get(note.id, { sessionToken: outsider.getSessionToken() }),
    Parse.Error.OBJECT_NOT_FOUND,
    assert,
  );
});
