// Aggregation, distinct, full-text search and explain through the JS SDK:
// `query.aggregate(pipeline)` (array and object pipelines, on top of a where), `query.distinct`,
// `query.fullText(...)` with its options and `sortByTextScore()`, `query.explain()` — and what
// a client without the master key gets.
//
// Against Parse Server 9.10 on PostgreSQL (PARLOR_SDK_TARGET_URL) four of these fail on
// purpose, where Parlor keeps MongoDB's meaning: its adapter ignores `$count`/`$unwind`, drops
// `objectId` in `$project` and ignores an unknown stage (no 102); it refuses
// `$caseSensitive`; and it sanitizes the master-key refusal to "Permission denied".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, uniqueClass, expectParseError, MASTER } from './harness.mjs';

const Item = uniqueClass('AggItem');
const Note = uniqueClass('AggNote');
const Pointed = uniqueClass('AggPointed');

let pointed;
const srv = useServer(async () => {
  pointed = await new Parse.Object(Pointed).save({ label: 'p' }, MASTER);
  for (const [score, name, size] of [
    [10, 'foo', ['S', 'M']],
    [10, 'foo', ['M', 'L']],
    [10, 'bar', ['S']],
    [20, 'dpl', ['S']],
  ]) {
    await new Parse.Object(Item).save({ score, name, size, owner: pointed }, MASTER);
  }
  for (const subject of ['coffee', 'Coffee Shopping', 'Baking a cake', 'Café Con Leche', 'coffee and cream', 'Cafe con Leche']) {
    await new Parse.Object(Note).save({ subject }, MASTER);
  }
});

const byId = (a, b) => JSON.stringify(a.objectId).localeCompare(JSON.stringify(b.objectId));

test('aggregate: $group with accumulators, array and object pipelines, on top of a where', async () => {
  void srv;
  const groups = await new Parse.Query(Item).aggregate([
    { $group: { _id: '$name', total: { $sum: '$score' }, n: { $sum: 1 } } },
  ]);
  assert.deepEqual(groups.sort(byId), [
    { objectId: 'bar', total: 10, n: 1 },
    { objectId: 'dpl', total: 20, n: 1 },
    { objectId: 'foo', total: 20, n: 2 },
  ]);
  const object = await new Parse.Query(Item).aggregate({ $group: { _id: null, avg: { $avg: '$score' }, max: { $max: '$score' } } });
  assert.deepEqual(object, [{ objectId: null, avg: 12.5, max: 20 }]);
  const filtered = await new Parse.Query(Item).equalTo('score', 10).aggregate([{ $group: { _id: '$name' } }]);
  assert.deepEqual(filtered.sort(byId), [{ objectId: 'bar' }, { objectId: 'foo' }]);
  const byOwner = await new Parse.Query(Item).aggregate([{ $group: { _id: '$owner', n: { $sum: 1 } } }]);
  assert.deepEqual(byOwner, [{ objectId: pointed.id, n: 4 }]);
});

test('aggregate: $match, $project, $sort, $limit, $unwind, $count and date parts', async () => {
  const rows = await new Parse.Query(Item).aggregate([
    { $match: { score: { $lt: 15 } } },
    { $sort: { name: 1 } },
    { $limit: 2 },
    { $project: { name: 1, _id: 0 } },
  ]);
  assert.deepEqual(rows, [{ name: 'bar', objectId: null }, { name: 'foo', objectId: null }]);
  const sizes = await new Parse.Query(Item).aggregate([
    { $unwind: '$size' },
    { $group: { _id: '$size', n: { $sum: 1 } } },
    { $sort: { n: -1 } },
  ]);
  assert.deepEqual(sizes, [{ objectId: 'S', n: 3 }, { objectId: 'M', n: 2 }, { objectId: 'L', n: 1 }]);
  assert.deepEqual(await new Parse.Query(Item).aggregate([{ $count: 'all' }]), [{ all: 4, objectId: null }]);
  const now = new Date();
  const years = await new Parse.Query(Item).aggregate([{ $group: { _id: { year: { $year: '$createdAt' } }, n: { $sum: 1 } } }]);
  assert.deepEqual(years, [{ objectId: { year: now.getUTCFullYear() }, n: 4 }]);
  // A Date in $match, as the SDK sends it (an ISO string).
  const recent = await new Parse.Query(Item).aggregate([{ $match: { createdAt: { $lte: new Date(Date.now() + 60_000) } } }, { $count: 'n' }]);
  assert.deepEqual(recent, [{ n: 4, objectId: null }]);
  // Returned objects carry their pointers typed.
  const [one] = await new Parse.Query(Item).aggregate([{ $limit: 1 }]);
  assert.deepEqual(one.owner, { __type: 'Pointer', className: Pointed, objectId: pointed.id });
});

test('aggregate: an unsupported stage is a 102', async () => {
  await expectParseError(
    new Parse.Query(Item).aggregate([{ $lookup: { from: Pointed, localField: 'owner', foreignField: '_id', as: 'o' } }]),
    Parse.Error.INVALID_QUERY,
    assert,
  );
});

test('distinct: values, pointers, array items, with a where', async () => {
  assert.deepEqual((await new Parse.Query(Item).distinct('score')).sort(), [10, 20]);
  assert.deepEqual(await new Parse.Query(Item).equalTo('name', 'dpl').distinct('score'), [20]);
  assert.deepEqual((await new Parse.Query(Item).distinct('size')).sort(), ['L', 'M', 'S']);
  assert.deepEqual(await new Parse.Query(Item).distinct('owner'), [
    { __type: 'Pointer', className: Pointed, objectId: pointed.id },
  ]);
});

test('without the master key, aggregate and distinct are refused and nothing leaks', async () => {
  const user = await Parse.User.signUp(`agg_${Date.now()}`, 'pw-agg');
  const token = user.getSessionToken();
  let error;
  try {
    await new Parse.Query(Item).aggregate([{ $group: { _id: '$name' } }], { useMasterKey: false, sessionToken: token });
  } catch (e) {
    error = e;
  }
  assert.ok(error, 'refused');
  assert.match(String(error.message), /master key is required/);
  // `query.distinct` always sends the master key; the REST call without it:
  for (const path of [`/aggregate/${Item}?distinct=name`, `/aggregate/${Item}?pipeline=${encodeURIComponent('[{"$group":{"_id":"$name"}}]')}`]) {
    const reply = await srv.rest('GET', path, { sessionToken: token });
    assert.equal(reply.status, 403);
    assert.deepEqual(reply.json, { error: 'unauthorized: master key is required' });
  }
  const explain = new Parse.Query(Item);
  explain.explain();
  await expectParseError(explain.find({ useMasterKey: false, sessionToken: token }), Parse.Error.INVALID_QUERY, assert);
  await Parse.User.logOut();
});

test('fullText: whole words, case and accent options, sortByTextScore', async () => {
  const subjects = (results) => results.map((o) => o.get('subject')).sort();
  assert.deepEqual(subjects(await new Parse.Query(Note).fullText('subject', 'coffee').find()), ['Coffee Shopping', 'coffee', 'coffee and cream']);
  assert.deepEqual(subjects(await new Parse.Query(Note).fullText('subject', 'Coffee', { caseSensitive: true }).find()), ['Coffee Shopping']);
  assert.deepEqual(subjects(await new Parse.Query(Note).fullText('subject', 'cafe', { diacriticSensitive: true }).find()), ['Cafe con Leche']);
  assert.deepEqual(subjects(await new Parse.Query(Note).fullText('subject', 'cafe', { diacriticSensitive: false }).find()), ['Cafe con Leche', 'Café Con Leche']);
  const ranked = await new Parse.Query(Note).fullText('subject', 'coffee').sortByTextScore().find();
  assert.deepEqual(ranked.map((o) => o.get('score')).slice(0, 2), [1, 0.75]);
  assert.equal(ranked[0].get('subject'), undefined, 'sortByTextScore selects only $score');
  const again = await new Parse.Query(Note).get(ranked[0].id);
  assert.equal(again.get('subject'), 'coffee');
});

test('explain: the database plan, with the master key', async () => {
  const query = new Parse.Query(Item).equalTo('name', 'foo');
  query.explain();
  query.hint('no_such_index');
  const plan = await query.find({ useMasterKey: true });
  assert.equal(plan.length, 1);
  const raw = plan[0].toJSON ? plan[0].toJSON() : plan[0];
  assert.ok(raw['QUERY PLAN'], JSON.stringify(raw));
});
