// Parse.Relation through the JS SDK: relation.add / remove, relation.query() ($relatedTo, and
// redirectClassNameForKey when the parent was never fetched).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, uniqueClass, createClass } from './harness.mjs';


const Group = uniqueClass('Group');
const Member = uniqueClass('Member');
const M = {};
const names = (results) => results.map((o) => o.get('name')).sort();

const srv = useServer(async () => {
  await createClass(Group, { name: { type: 'String' } });
  await createClass(Member, { name: { type: 'String' }, rank: { type: 'Number' } });
  for (const [i, n] of ['m1', 'm2', 'm3', 'm4'].entries()) {
    M[n] = await new Parse.Object(Member).save({ name: n, rank: i + 1 });
  }
});

async function newGroup(name, members) {
  const g = new Parse.Object(Group);
  g.set('name', name);
  g.relation('members').add(members);
  await g.save();
  return g;
}

test('relation.add() + save(), then relation.query().find() returns exactly the added objects', async () => {
  const g = await newGroup('g1', [M.m1, M.m2, M.m3]);
  const res = await g.relation('members').query().find();
  assert.deepEqual(names(res), ['m1', 'm2', 'm3']);
  for (const o of res) assert.equal(o.className, Member);
});

test('relation.query() on a parent that was never fetched uses redirectClassNameForKey and returns target-class objects', async () => {
  const g = await newGroup('g2', [M.m2, M.m4]);
  const parent = Parse.Object.extend(Group).createWithoutData(g.id);
  const rq = parent.relation('members').query();
  assert.equal(rq._extraOptions.redirectClassNameForKey, 'members', 'the SDK redirects (precondition)');
  const res = await rq.find();
  assert.deepEqual(names(res), ['m2', 'm4']);
  for (const o of res) assert.equal(o.className, Member);
  // get() and first() read the class from the object itself, not from the response.
  const one = await parent.relation('members').query().get(res[0].id);
  assert.equal(one.className, Member);
  assert.equal(one.id, res[0].id);
  const first = await parent.relation('members').query().first();
  assert.equal(first.className, Member);
});

test('a fetched parent shows the field as a Parse.Relation of the target class; REST shows {__type:"Relation"}', async () => {
  const g = await newGroup('g3', [M.m1]);
  const got = await new Parse.Query(Group).get(g.id);
  const rel = got.get('members');
  assert.ok(rel instanceof Parse.Relation);
  assert.equal(rel.targetClassName, Member);
  const raw = await srv.rest('GET', `/classes/${Group}/${g.id}`);
  assert.deepEqual(raw.json.members, { __type: 'Relation', className: Member });
  const schema = await new Parse.Schema(Group).get();
  assert.deepEqual(schema.fields.members, { type: 'Relation', targetClass: Member });
});

test('relation.remove() + save() removes only that object from the relation', async () => {
  const g = await newGroup('g4', [M.m1, M.m2, M.m3]);
  g.relation('members').remove(M.m2);
  await g.save();
  assert.deepEqual(names(await g.relation('members').query().find()), ['m1', 'm3']);
  const fresh = Parse.Object.extend(Group).createWithoutData(g.id);
  assert.deepEqual(names(await fresh.relation('members').query().find()), ['m1', 'm3']);
});

test('adding and removing in one save applies both changes', async () => {
  const g = await newGroup('g5', [M.m1, M.m2]);
  const rel = g.relation('members');
  rel.add(M.m4);
  rel.remove(M.m1);
  await g.save();
  assert.deepEqual(names(await g.relation('members').query().find()), ['m2', 'm4']);
});

test('relations of two parents are independent even when they share a member', async () => {
  const a = await newGroup('ga', [M.m1, M.m2]);
  const b = await newGroup('gb', [M.m2, M.m3]);
  assert.deepEqual(names(await a.relation('members').query().find()), ['m1', 'm2']);
  assert.deepEqual(names(await b.relation('members').query().find()), ['m2', 'm3']);
});

test('a relation query takes further constraints, ordering and count()', async () => {
  const g = await newGroup('g6', [M.m1, M.m2, M.m3, M.m4]);
  const rq = () => Parse.Object.extend(Group).createWithoutData(g.id).relation('members').query();
  assert.deepEqual((await rq().greaterThan('rank', 2).descending('rank').find()).map((o) => o.get('name')), ['m4', 'm3']);
  assert.equal(await rq().count(), 4);
  assert.equal(await rq().lessThan('rank', 2).count(), 1);
});

test('an empty relation query returns no objects', async () => {
  const g = await newGroup('g7', [M.m1]);
  g.relation('members').remove(M.m1);
  await g.save();
  assert.deepEqual(await g.relation('members').query().find(), []);
});
