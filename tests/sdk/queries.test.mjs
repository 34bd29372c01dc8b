// Parse.Query through the JS SDK: every operator of protocol §3.2 except geo and full-text,
// ordering, paging, keys/excludeKeys, include, count/first/get/find/each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, MASTER, uniqueClass, createClass, expectParseError, sleep } from './harness.mjs';


const Post = uniqueClass('Post');
const Author = uniqueClass('Author');
const Profile = uniqueClass('Profile');
const Team = uniqueClass('Team');
const Many = uniqueClass('Many');

const P = {}; // posts by name
const A = {}; // authors by name
const PR = {}; // profiles

// Names of the results, sorted (for set comparisons).
const names = (results, key = 'name') => results.map((o) => o.get(key)).sort();
// Names in result order.
const ordered = (results, key = 'name') => results.map((o) => o.get(key));
const q = () => new Parse.Query(Post);

const srv = useServer(async () => {
  await createClass(Profile, { bio: { type: 'String' }, level: { type: 'Number' } });
  await createClass(Author, {
    name: { type: 'String' },
    city: { type: 'String' },
    profile: { type: 'Pointer', targetClass: Profile },
  });
  await createClass(Team, { homeCity: { type: 'String' }, active: { type: 'Boolean' } });
  await createClass(Post, {
    name: { type: 'String' },
    score: { type: 'Number' },
    tags: { type: 'Array' },
    meta: { type: 'Object' },
    author: { type: 'Pointer', targetClass: Author },
    text: { type: 'String' },
  });
  await createClass(Many, { i: { type: 'Number' } });

  PR.ann = await new Parse.Object(Profile).save({ bio: 'ann bio', level: 3 });
  PR.bob = await new Parse.Object(Profile).save({ bio: 'bob bio', level: 1 });
  A.ann = await new Parse.Object(Author).save({ name: 'ann', city: 'Paris', profile: PR.ann });
  A.bob = await new Parse.Object(Author).save({ name: 'bob', city: 'Oslo', profile: PR.bob });
  A.cid = await new Parse.Object(Author).save({ name: 'cid', city: 'Rome' });
  await new Parse.Object(Team).save({ homeCity: 'Paris', active: true });
  await new Parse.Object(Team).save({ homeCity: 'Rome', active: false });

  const rows = [
    { name: 'alpha', score: 10, tags: ['red', 'blue'], meta: { model: 'x', tokens: 5 }, author: A.ann, text: 'a.b*(c' },
    { name: 'beta', score: 20, tags: ['blue', 'green'], meta: { model: 'y', tokens: 50 }, author: A.bob, text: 'xa.b*(c)y' },
    { name: 'gamma', score: 30, tags: ['green'], meta: { model: 'x', tokens: 500 }, author: A.cid, text: 'ab' },
    { name: 'delta', score: 20, tags: [], author: A.ann, text: 'A.B*(C' },
    { name: 'epsilon', tags: ['red', 'blue', 'green'], meta: { model: 'z', tokens: 0 }, author: A.bob, text: 'zz\na.b*(c' },
  ];
  // Sequential saves a few ms apart, so createdAt values are distinct and ordered.
  for (const row of rows) {
    P[row.name] = await new Parse.Object(Post).save(row);
    await sleep(3);
  }
});

test('equalTo on a String and on a Number field returns exactly the matching objects', async () => {
  assert.deepEqual(names(await q().equalTo('name', 'beta').find()), ['beta']);
  assert.deepEqual(names(await q().equalTo('score', 20).find()), ['beta', 'delta']);
  assert.deepEqual(names(await q().equalTo('name', 'nobody').find()), []);
});

test('notEqualTo also matches objects where the field is missing', async () => {
  assert.deepEqual(names(await q().notEqualTo('score', 20).find()), ['alpha', 'epsilon', 'gamma']);
});

test('lessThan / lessThanOrEqualTo / greaterThan / greaterThanOrEqualTo on numbers', async () => {
  assert.deepEqual(names(await q().lessThan('score', 20).find()), ['alpha']);
  assert.deepEqual(names(await q().lessThanOrEqualTo('score', 20).find()), ['alpha', 'beta', 'delta']);
  assert.deepEqual(names(await q().greaterThan('score', 20).find()), ['gamma']);
  assert.deepEqual(names(await q().greaterThanOrEqualTo('score', 20).find()), ['beta', 'delta', 'gamma']);
  assert.deepEqual(names(await q().greaterThan('score', 10).lessThan('score', 30).find()), ['beta', 'delta']);
});

test('lessThan / greaterThanOrEqualTo on strings compare lexicographically', async () => {
  assert.deepEqual(names(await q().lessThan('name', 'c').find()), ['alpha', 'beta']);
  assert.deepEqual(names(await q().greaterThanOrEqualTo('name', 'delta').find()), ['delta', 'epsilon', 'gamma']);
});

test('containedIn / notContainedIn on a String field', async () => {
  assert.deepEqual(names(await q().containedIn('name', ['alpha', 'gamma', 'zzz']).find()), ['alpha', 'gamma']);
  assert.deepEqual(names(await q().notContainedIn('name', ['alpha', 'gamma']).find()), ['beta', 'delta', 'epsilon']);
  assert.deepEqual(names(await q().containedIn('name', []).find()), [], '$in [] matches nothing');
});

test('containedIn on an Array field matches arrays holding any of the listed values', async () => {
  assert.deepEqual(names(await q().containedIn('tags', ['red']).find()), ['alpha', 'epsilon']);
  assert.deepEqual(names(await q().containedIn('tags', ['red', 'green']).find()), ['alpha', 'beta', 'epsilon', 'gamma']);
});

test('equalTo on an Array field matches arrays that contain the value; notEqualTo means "does not contain"', async () => {
  assert.deepEqual(names(await q().equalTo('tags', 'green').find()), ['beta', 'epsilon', 'gamma']);
  assert.deepEqual(names(await q().notEqualTo('tags', 'green').find()), ['alpha', 'delta']);
});

test('containsAll matches arrays holding every listed value', async () => {
  assert.deepEqual(names(await q().containsAll('tags', ['blue', 'green']).find()), ['beta', 'epsilon']);
  assert.deepEqual(names(await q().containsAll('tags', ['red']).find()), ['alpha', 'epsilon']);
});

test('containsAllStartingWith matches arrays with an item starting with each prefix', async () => {
  assert.deepEqual(names(await q().containsAllStartingWith('tags', ['re', 'gr']).find()), ['epsilon']);
  assert.deepEqual(names(await q().containsAllStartingWith('tags', ['bl']).find()), ['alpha', 'beta', 'epsilon']);
});

test('containedBy matches arrays whose every item is in the list (the empty array included)', async () => {
  assert.deepEqual(names(await q().containedBy('tags', ['red', 'blue']).find()), ['alpha', 'delta']);
  assert.deepEqual(names(await q().containedBy('tags', ['green', 'blue']).find()), ['beta', 'delta', 'gamma']);
});

test('exists / doesNotExist', async () => {
  assert.deepEqual(names(await q().exists('meta').find()), ['alpha', 'beta', 'epsilon', 'gamma']);
  assert.deepEqual(names(await q().doesNotExist('meta').find()), ['delta']);
  assert.deepEqual(names(await q().doesNotExist('score').find()), ['epsilon']);
  assert.deepEqual(names(await q().exists('score').find()), ['alpha', 'beta', 'delta', 'gamma']);
});

test('matches: a regex string, a RegExp with the i flag, and the m modifier', async () => {
  assert.deepEqual(names(await q().matches('text', 'a\\.b').find()), ['alpha', 'beta', 'epsilon']);
  assert.deepEqual(names(await q().matches('text', /^a\.b/).find()), ['alpha']);
  assert.deepEqual(names(await q().matches('text', /^a\.b/i).find()), ['alpha', 'delta']);
  assert.deepEqual(names(await q().matches('text', '^a\\.b', 'i').find()), ['alpha', 'delta']);
  assert.deepEqual(names(await q().matches('text', '^a\\.b', 'im').find()), ['alpha', 'delta', 'epsilon']);
  assert.deepEqual(names(await q().matches('text', 'A.B', 'i').find()), ['alpha', 'beta', 'delta', 'epsilon']);
});

test('matches with an invalid $options value fails with 102 INVALID_QUERY', async () => {
  await expectParseError(q().matches('text', 'a', 'z').find(), Parse.Error.INVALID_QUERY, assert);
});

test('startsWith / endsWith / contains quote regex metacharacters (\\Q…\\E): "a.b*(c" is literal', async () => {
  assert.deepEqual(names(await q().startsWith('text', 'a.b*(c').find()), ['alpha']);
  assert.deepEqual(names(await q().startsWith('text', 'a.b*(').find()), ['alpha']);
  assert.deepEqual(names(await q().endsWith('text', '*(c').find()), ['alpha', 'epsilon']);
  assert.deepEqual(names(await q().contains('text', 'a.b*(c').find()), ['alpha', 'beta', 'epsilon']);
  // unquoted, ".b*" would also match "ab" (gamma)
  assert.deepEqual(names(await q().contains('text', '.b*').find()), ['alpha', 'beta', 'epsilon']);
  assert.deepEqual(names(await q().contains('text', '(c)').find()), ['beta']);
  assert.deepEqual(names(await q().startsWith('text', 'A.B').find()), ['delta']);
});

test('matchesQuery ($inQuery) / doesNotMatchQuery ($notInQuery) on a pointer field', async () => {
  const inParis = new Parse.Query(Author).equalTo('city', 'Paris');
  assert.deepEqual(names(await q().matchesQuery('author', inParis).find()), ['alpha', 'delta']);
  assert.deepEqual(names(await q().doesNotMatchQuery('author', inParis).find()), ['beta', 'epsilon', 'gamma']);
  const nobody = new Parse.Query(Author).equalTo('city', 'Atlantis');
  assert.deepEqual(names(await q().matchesQuery('author', nobody).find()), []);
});

test('matchesKeyInQuery ($select) / doesNotMatchKeyInQuery ($dontSelect) on value fields', async () => {
  const activeTeams = new Parse.Query(Team).equalTo('active', true);
  const aq = () => new Parse.Query(Author);
  assert.deepEqual(names(await aq().matchesKeyInQuery('city', 'homeCity', activeTeams).find()), ['ann']);
  assert.deepEqual(names(await aq().doesNotMatchKeyInQuery('city', 'homeCity', activeTeams).find()), ['bob', 'cid']);
  const allTeams = new Parse.Query(Team);
  assert.deepEqual(names(await aq().matchesKeyInQuery('city', 'homeCity', allTeams).find()), ['ann', 'cid']);
  assert.deepEqual(names(await aq().doesNotMatchKeyInQuery('city', 'homeCity', allTeams).find()), ['bob']);
});

test('Parse.Query.or / and / nor combine sub-queries', async () => {
  const or = Parse.Query.or(q().equalTo('score', 10), q().equalTo('name', 'gamma'));
  assert.deepEqual(names(await or.find()), ['alpha', 'gamma']);
  const and = Parse.Query.and(q().greaterThanOrEqualTo('score', 20), q().containedIn('tags', ['green']));
  assert.deepEqual(names(await and.find()), ['beta', 'gamma']);
  const nor = Parse.Query.nor(q().equalTo('name', 'beta'), q().equalTo('name', 'alpha'));
  assert.deepEqual(names(await nor.find()), ['delta', 'epsilon', 'gamma']);
  // MongoDB semantics: an object without `score` does not match {score:20}, so $nor keeps it.
  const norMissing = Parse.Query.nor(q().equalTo('score', 20), q().equalTo('name', 'alpha'));
  assert.deepEqual(names(await norMissing.find()), ['epsilon', 'gamma']);
  // an $or combined with a further top-level constraint
  const orAnd = Parse.Query.or(q().equalTo('score', 20), q().equalTo('score', 30)).notEqualTo('name', 'delta');
  assert.deepEqual(names(await orAnd.find()), ['beta', 'gamma']);
});

test('dotted keys reach into Object fields: equalTo("meta.model", "x"), greaterThan("meta.tokens", 10)', async () => {
  assert.deepEqual(names(await q().equalTo('meta.model', 'x').find()), ['alpha', 'gamma']);
  assert.deepEqual(names(await q().greaterThan('meta.tokens', 10).find()), ['beta', 'gamma']);
  assert.deepEqual(names(await q().containedIn('meta.model', ['y', 'z']).find()), ['beta', 'epsilon']);
});

test('equalTo with a Parse.Object matches the pointer by class and id; the same id under another class does not', async () => {
  assert.deepEqual(names(await q().equalTo('author', A.ann).find()), ['alpha', 'delta']);
  assert.deepEqual(names(await q().containedIn('author', [A.ann, A.cid]).find()), ['alpha', 'delta', 'gamma']);
  assert.deepEqual(names(await q().notEqualTo('author', A.ann).find()), ['beta', 'epsilon', 'gamma']);
  const wrongClass = Parse.Object.extend(Profile).createWithoutData(A.ann.id);
  assert.deepEqual(names(await q().equalTo('author', wrongClass).find()), []);
});

test('Date comparisons on createdAt select objects created before/after a given object', async () => {
  const after = await q().greaterThan('createdAt', P.gamma.createdAt).find();
  assert.deepEqual(names(after), ['delta', 'epsilon']);
  const upTo = await q().lessThanOrEqualTo('createdAt', P.beta.createdAt).find();
  assert.deepEqual(names(upTo), ['alpha', 'beta']);
  const between = await q().greaterThanOrEqualTo('createdAt', P.beta.createdAt).lessThan('createdAt', P.delta.createdAt).find();
  assert.deepEqual(names(between), ['beta', 'gamma']);
  const eq = await q().equalTo('createdAt', P.gamma.createdAt).find();
  assert.deepEqual(names(eq), ['gamma']);
});

test('equalTo / containedIn on objectId', async () => {
  assert.deepEqual(names(await q().equalTo('objectId', P.beta.id).find()), ['beta']);
  assert.deepEqual(names(await q().containedIn('objectId', [P.alpha.id, P.gamma.id]).find()), ['alpha', 'gamma']);
});

test('ascending / descending / addAscending / addDescending sort by several keys in order', async () => {
  const base = () => q().exists('score');
  assert.deepEqual(ordered(await base().ascending('name').find()), ['alpha', 'beta', 'delta', 'gamma']);
  assert.deepEqual(ordered(await base().descending('name').find()), ['gamma', 'delta', 'beta', 'alpha']);
  assert.deepEqual(ordered(await base().descending('score').addAscending('name').find()), ['gamma', 'beta', 'delta', 'alpha']);
  assert.deepEqual(ordered(await base().ascending('score').addDescending('name').find()), ['alpha', 'delta', 'beta', 'gamma']);
  assert.deepEqual(ordered(await base().ascending(['score', 'name']).find()), ['alpha', 'beta', 'delta', 'gamma']);
  assert.deepEqual(ordered(await q().descending('createdAt').find()), ['epsilon', 'delta', 'gamma', 'beta', 'alpha']);
  assert.deepEqual(ordered(await q().ascending('createdAt').find()), ['alpha', 'beta', 'gamma', 'delta', 'epsilon']);
});

test('ordering by a key that is not in the schema is ignored without an error', async () => {
  const res = await q().ascending('noSuchField').find();
  assert.equal(res.length, 5);
});

test('limit and skip page through the ordered results', async () => {
  assert.deepEqual(ordered(await q().ascending('name').limit(2).find()), ['alpha', 'beta']);
  assert.deepEqual(ordered(await q().ascending('name').skip(1).limit(2).find()), ['beta', 'delta']);
  assert.deepEqual(ordered(await q().ascending('name').skip(4).limit(10).find()), ['gamma']);
  assert.deepEqual(ordered(await q().ascending('name').skip(5).find()), []);
  assert.deepEqual(ordered(await q().ascending('name').limit(0).find()), []);
});

test('a find without limit returns at most 100 objects; limit(1000) returns all 130', async () => {
  const objs = Array.from({ length: 130 }, (_, i) => new Parse.Object(Many).set('i', i));
  await Parse.Object.saveAll(objs);
  const def = await new Parse.Query(Many).find();
  assert.equal(def.length, 100);
  const big = await new Parse.Query(Many).ascending('i').limit(1000).find();
  assert.equal(big.length, 130);
  assert.deepEqual(big.map((o) => o.get('i')), Array.from({ length: 130 }, (_, i) => i));
  assert.equal(await new Parse.Query(Many).greaterThanOrEqualTo('i', 0).count(), 130);
});

test('select(keys) returns only those fields plus objectId/createdAt/updatedAt', async () => {
  const [o] = await q().equalTo('name', 'alpha').select('name', 'score').find();
  assert.equal(o.id, P.alpha.id);
  assert.equal(o.get('name'), 'alpha');
  assert.equal(o.get('score'), 10);
  assert.equal(o.has('tags'), false);
  assert.equal(o.has('meta'), false);
  assert.equal(o.has('text'), false);
  assert.ok(o.createdAt instanceof Date);
  assert.ok(o.updatedAt instanceof Date);
  const raw = await srv.rest('GET', `/classes/${Post}?where=${encodeURIComponent(JSON.stringify({ name: 'alpha' }))}&keys=name`);
  assert.deepEqual(Object.keys(raw.json.results[0]).sort(), ['createdAt', 'name', 'objectId', 'updatedAt']);
});

test('exclude(keys) leaves those fields out and returns the rest', async () => {
  const [o] = await q().equalTo('name', 'alpha').exclude('tags', 'meta').find();
  assert.equal(o.get('name'), 'alpha');
  assert.equal(o.get('score'), 10);
  assert.equal(o.get('text'), 'a.b*(c');
  assert.equal(o.has('tags'), false);
  assert.equal(o.has('meta'), false);
});

test('without include a pointer comes back as an unfetched Parse.Object', async () => {
  const [o] = await q().equalTo('name', 'alpha').find();
  const author = o.get('author');
  assert.equal(author.id, A.ann.id);
  assert.equal(author.className, Author);
  assert.equal(author.isDataAvailable(), false);
});

test('include("author") expands the pointer into the full Author object', async () => {
  const [o] = await q().equalTo('name', 'alpha').include('author').find();
  const author = o.get('author');
  assert.equal(author.id, A.ann.id);
  assert.equal(author.isDataAvailable(), true);
  assert.equal(author.get('name'), 'ann');
  assert.equal(author.get('city'), 'Paris');
  assert.equal(author.get('profile').isDataAvailable(), false, 'only one level is included');
});

test('include("author.profile") expands both levels of a dotted path', async () => {
  const res = await q().containedIn('name', ['alpha', 'gamma']).include('author.profile').ascending('name').find();
  const [alpha, gamma] = res;
  assert.equal(alpha.get('author').get('name'), 'ann');
  assert.equal(alpha.get('author').get('profile').get('bio'), 'ann bio');
  assert.equal(alpha.get('author').get('profile').get('level'), 3);
  assert.equal(gamma.get('author').get('name'), 'cid');
  assert.equal(gamma.get('author').get('profile'), undefined, 'cid has no profile');
});

test('includeAll() ("*") expands every pointer field one level deep', async () => {
  const [o] = await q().equalTo('name', 'beta').includeAll().find();
  assert.equal(o.get('author').get('name'), 'bob');
  assert.equal(o.get('author').get('profile').isDataAvailable(), false);
});

test('include on get() expands the pointer too', async () => {
  const o = await q().include('author').get(P.delta.id);
  assert.equal(o.get('author').get('city'), 'Paris');
});

test('count() counts every match, ignoring limit and skip', async () => {
  assert.equal(await q().equalTo('score', 20).count(), 2);
  assert.equal(await q().exists('name').count(), 5);
  assert.equal(await q().exists('name').limit(1).skip(2).count(), 5);
  assert.equal(await q().equalTo('name', 'nobody').count(), 0);
});

test('first() returns the first match in order, or undefined when nothing matches', async () => {
  const f = await q().exists('score').descending('score').first();
  assert.equal(f.get('name'), 'gamma');
  assert.equal(await q().equalTo('name', 'nobody').first(), undefined);
});

test('get() of an id that exists but fails the query constraints rejects with 101', async () => {
  const o = await q().get(P.alpha.id);
  assert.equal(o.get('name'), 'alpha');
  await expectParseError(q().equalTo('name', 'beta').get(P.alpha.id), 101, assert);
});

test('each() visits every matching object exactly once', async () => {
  const seen = [];
  await q().each((o) => {
    seen.push(o.get('name'));
  });
  assert.deepEqual(seen.sort(), ['alpha', 'beta', 'delta', 'epsilon', 'gamma']);
});

test('eachBatch({batchSize:2}) walks the matches in batches of 2, 2, 1', async () => {
  const sizes = [];
  const seen = [];
  await q().eachBatch((batch) => {
    sizes.push(batch.length);
    for (const o of batch) seen.push(o.get('name'));
  }, { batchSize: 2 });
  assert.deepEqual(sizes, [2, 2, 1]);
  assert.deepEqual(seen.sort(), ['alpha', 'beta', 'delta', 'epsilon', 'gamma']);
});

test('a query with the master key sees the same objects as a plain one for public data', async () => {
  assert.deepEqual(names(await q().find(MASTER)), ['alpha', 'beta', 'delta', 'epsilon', 'gamma']);
});
