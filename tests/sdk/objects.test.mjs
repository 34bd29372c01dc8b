// Objects through the Parse JS SDK: create/save/fetch/destroy, field operators, every data
// type of protocol §2.2, errors as Parse.Error, saveAll/destroyAll batching and transactions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, MASTER, uniqueClass, createClass, expectParseError } from './harness.mjs';


const Item = uniqueClass('Item');
const Typed = uniqueClass('Typed');
const Bulk = uniqueClass('Bulk');

const srv = useServer(async () => {
  await createClass(Item, { title: { type: 'String' }, n: { type: 'Number' } });
  await createClass(Typed, {});
  await createClass(Bulk, { n: { type: 'Number' }, marker: { type: 'String' } });
});

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function stale(className, id) {
  return Parse.Object.extend(className).createWithoutData(id);
}

test('save() of a new object assigns a 10-char alphanumeric objectId and createdAt == updatedAt', async () => {
  const o = new Parse.Object(Item);
  o.set({ title: 'hello', n: 3 });
  await o.save();
  assert.match(o.id, /^[A-Za-z0-9]{10}$/);
  assert.ok(o.createdAt instanceof Date);
  assert.ok(o.updatedAt instanceof Date);
  assert.equal(o.createdAt.getTime(), o.updatedAt.getTime());
  assert.ok(Math.abs(o.createdAt.getTime() - Date.now()) < 60_000, 'createdAt is the server time of the create');
});

test('the raw REST form of a saved object has ISO createdAt/updatedAt with 3 fractional digits', async () => {
  const o = await new Parse.Object(Item).save({ title: 'iso' });
  const r = await srv.rest('GET', `/classes/${Item}/${o.id}`);
  assert.equal(r.status, 200);
  assert.match(r.json.createdAt, ISO_MS);
  assert.match(r.json.updatedAt, ISO_MS);
  assert.equal(r.json.objectId, o.id);
  assert.equal(r.json.title, 'iso');
  assert.equal(r.json.ACL, undefined, 'an object saved without ACL has no ACL key');
});

test('query.get() returns the saved fields and timestamps', async () => {
  const o = await new Parse.Object(Item).save({ title: 'fetch me', n: 42 });
  const got = await new Parse.Query(Item).get(o.id);
  assert.equal(got.id, o.id);
  assert.equal(got.className, Item);
  assert.equal(got.get('title'), 'fetch me');
  assert.equal(got.get('n'), 42);
  assert.equal(got.createdAt.getTime(), o.createdAt.getTime());
  assert.equal(got.updatedAt.getTime(), o.updatedAt.getTime());
});

test('save() of an existing object updates the changed field, keeps the others, and moves updatedAt forward', async () => {
  const o = await new Parse.Object(Item).save({ title: 'before', n: 1 });
  const created = o.createdAt.getTime();
  await new Promise((r) => setTimeout(r, 5));
  o.set('title', 'after');
  await o.save();
  assert.ok(o.updatedAt.getTime() > created, 'updatedAt moved forward');
  const got = await new Parse.Query(Item).get(o.id);
  assert.equal(got.get('title'), 'after');
  assert.equal(got.get('n'), 1);
  assert.equal(got.createdAt.getTime(), created);
  assert.equal(got.updatedAt.getTime(), o.updatedAt.getTime());
});

test('fetch() refreshes a stale copy with the values another client saved', async () => {
  const o = await new Parse.Object(Item).save({ title: 'v1' });
  const other = stale(Item, o.id);
  other.set('title', 'v2');
  await other.save();
  await o.fetch();
  assert.equal(o.get('title'), 'v2');
});

test('Parse.Object.fetchAll() loads several objects by id in one call', async () => {
  const a = await new Parse.Object(Item).save({ title: 'fa' });
  const b = await new Parse.Object(Item).save({ title: 'fb' });
  const [fa, fb] = await Parse.Object.fetchAll([stale(Item, a.id), stale(Item, b.id)]);
  assert.equal(fa.get('title'), 'fa');
  assert.equal(fb.get('title'), 'fb');
});

test('destroy() deletes the object: get and fetch then fail with 101 OBJECT_NOT_FOUND', async () => {
  const o = await new Parse.Object(Item).save({ title: 'doomed' });
  await o.destroy();
  await expectParseError(new Parse.Query(Item).get(o.id), Parse.Error.OBJECT_NOT_FOUND, assert);
  await expectParseError(stale(Item, o.id).fetch(), Parse.Error.OBJECT_NOT_FOUND, assert);
});

test('destroy() of an already deleted object fails with 101', async () => {
  const o = await new Parse.Object(Item).save({ title: 'twice' });
  await stale(Item, o.id).destroy();
  await expectParseError(o.destroy(), Parse.Error.OBJECT_NOT_FOUND, assert);
});

test('get() of an objectId that does not exist fails with Parse.Error 101', async () => {
  await expectParseError(new Parse.Query(Item).get('doesNotExi'), 101, assert);
  await expectParseError(stale(Item, 'doesNotExi').fetch(), 101, assert);
});

test('saving a String into a Number field fails with 111 INCORRECT_TYPE and stores nothing', async () => {
  const marker = `mismatch-${Date.now()}`;
  const o = new Parse.Object(Item);
  o.set({ title: marker, n: 'not a number' });
  await expectParseError(o.save(), Parse.Error.INCORRECT_TYPE, assert);
  assert.equal(o.id, undefined);
  const count = await new Parse.Query(Item).equalTo('title', marker).count(MASTER);
  assert.equal(count, 0);
});

test('updating an existing Number field with a Boolean fails with 111 and keeps the old value', async () => {
  const o = await new Parse.Object(Item).save({ n: 7 });
  const s = stale(Item, o.id);
  s.set('n', true);
  await expectParseError(s.save(), 111, assert);
  const got = await new Parse.Query(Item).get(o.id);
  assert.equal(got.get('n'), 7);
});

test('a non-master create in a class that does not exist fails with 119; with the master key it creates the class', async () => {
  const Ghost = uniqueClass('Ghost');
  const o = new Parse.Object(Ghost);
  o.set('x', 1);
  await expectParseError(o.save(), Parse.Error.OPERATION_FORBIDDEN, assert);
  assert.equal(o.id, undefined);
  await o.save(null, MASTER);
  assert.match(o.id, /^[A-Za-z0-9]{10}$/);
  const schema = await new Parse.Schema(Ghost).get();
  assert.equal(schema.className, Ghost);
  assert.deepEqual(schema.fields.x, { type: 'Number' });
  // Once the class exists, a plain client may add objects (default CLP is public).
  const p = await new Parse.Object(Ghost).save({ x: 2 });
  assert.ok(p.id);
});

test('a new field added by a client write appears in the schema with the inferred type', async () => {
  await new Parse.Object(Item).save({ brandNew: 'str', brandNewNum: 1.5, brandNewDate: new Date() });
  const schema = await new Parse.Schema(Item).get();
  assert.equal(schema.fields.brandNew.type, 'String');
  assert.equal(schema.fields.brandNewNum.type, 'Number');
  assert.equal(schema.fields.brandNewDate.type, 'Date');
});

test('increment/decrement: the server applies them to its value and the save response carries the result', async () => {
  const o = await new Parse.Object(Item).save({ n: 3 });
  o.increment('n', 2);
  await o.save();
  assert.equal(o.get('n'), 5);
  // A copy that never saw n: its save response must carry the server's resulting value.
  const s = stale(Item, o.id);
  s.increment('n', 10);
  await s.save();
  assert.equal(s.get('n'), 15);
  const s2 = stale(Item, o.id);
  s2.decrement('n', 4);
  await s2.save();
  assert.equal(s2.get('n'), 11);
  const s3 = stale(Item, o.id);
  s3.increment('n', 0.5);
  await s3.save();
  assert.equal(s3.get('n'), 11.5);
  const got = await new Parse.Query(Item).get(o.id);
  assert.equal(got.get('n'), 11.5);
});

test('increment on a new object (or an unset field) starts from the amount', async () => {
  const o = new Parse.Object(Item);
  o.increment('n', 4);
  await o.save();
  assert.equal((await new Parse.Query(Item).get(o.id)).get('n'), 4);
  const s = stale(Item, o.id);
  s.increment('counter2');
  await s.save();
  assert.equal(s.get('counter2'), 1);
});

test('add / addAllUnique / remove on an Array field give the exact resulting arrays', async () => {
  const o = await new Parse.Object(Item).save({ tags: ['a', 'b'] });
  const s1 = stale(Item, o.id);
  s1.add('tags', 'c');
  await s1.save();
  assert.deepEqual(s1.get('tags'), ['a', 'b', 'c'], 'Add appends; the response holds the whole array');
  const s2 = stale(Item, o.id);
  s2.addAllUnique('tags', ['b', 'd', 'a', 'e']);
  await s2.save();
  assert.deepEqual(s2.get('tags'), ['a', 'b', 'c', 'd', 'e'], 'AddUnique keeps order and appends only new items');
  const s3 = stale(Item, o.id);
  s3.add('tags', 'a');
  await s3.save();
  assert.deepEqual(s3.get('tags'), ['a', 'b', 'c', 'd', 'e', 'a'], 'Add allows duplicates');
  const s4 = stale(Item, o.id);
  s4.removeAll('tags', ['a', 'd', 'zzz']);
  await s4.save();
  assert.deepEqual(s4.get('tags'), ['b', 'c', 'e'], 'Remove removes every occurrence');
  const got = await new Parse.Query(Item).get(o.id);
  assert.deepEqual(got.get('tags'), ['b', 'c', 'e']);
});

test('addUnique of the same pointer twice stores it once (pointers compared by class + id)', async () => {
  const target = await new Parse.Object(Item).save({ title: 'target' });
  const o = await new Parse.Object(Item).save({ refs: [] });
  const s1 = stale(Item, o.id);
  s1.addUnique('refs', target);
  await s1.save();
  const s2 = stale(Item, o.id);
  s2.addUnique('refs', stale(Item, target.id));
  await s2.save();
  const got = await new Parse.Query(Item).get(o.id);
  const refs = got.get('refs');
  assert.equal(refs.length, 1);
  assert.equal(refs[0].id, target.id);
  assert.equal(refs[0].className, Item);
});

test('unset() removes the field: a later get has no value for it', async () => {
  const o = await new Parse.Object(Item).save({ title: 'keep', n: 9 });
  const s = stale(Item, o.id);
  s.unset('n');
  await s.save();
  const got = await new Parse.Query(Item).get(o.id);
  assert.equal(got.has('n'), false);
  assert.equal(got.get('n'), undefined);
  assert.equal(got.get('title'), 'keep');
  const raw = await srv.rest('GET', `/classes/${Item}/${o.id}`);
  assert.equal('n' in raw.json, false, 'the REST body has no key for an unset field');
});

test('set("meta.model", …) updates one key inside an Object field and keeps its other keys', async () => {
  const o = await new Parse.Object(Item).save({ meta: { model: 'a', tokens: 10 } });
  const s = stale(Item, o.id);
  s.set('meta.model', 'b');
  await s.save();
  const s2 = stale(Item, o.id);
  s2.increment('meta.tokens', 5);
  await s2.save();
  const got = await new Parse.Query(Item).get(o.id);
  assert.deepEqual(got.get('meta'), { model: 'b', tokens: 15 });
});

test('every data type round-trips through the SDK: String, Number, Boolean, null, Date, Pointer, GeoPoint, Polygon, Object, Array', async () => {
  const target = await new Parse.Object(Item).save({ title: 'pointee' });
  const when = new Date('2024-05-01T12:34:56.789Z');
  const o = new Parse.Object(Typed);
  o.set({
    s: 'text ü ✓',
    num: -12.5,
    int: 7,
    yes: true,
    no: false,
    nothing: null,
    when,
    ref: target,
    where: new Parse.GeoPoint(40.5, -30.25),
    area: new Parse.Polygon([[0, 0], [0, 1], [1, 1]]),
    obj: { model: 'gpt', usage: { total: 12, parts: [1, 2] }, flag: true, empty: {} },
    arr: [1, 'two', { three: 3 }, [4], true, null],
    dates: [when],
  });
  await o.save(null, MASTER);
  const got = await new Parse.Query(Typed).get(o.id);
  assert.equal(got.get('s'), 'text ü ✓');
  assert.equal(got.get('num'), -12.5);
  assert.equal(got.get('int'), 7);
  assert.equal(got.get('yes'), true);
  assert.equal(got.get('no'), false);
  assert.equal(got.get('nothing') ?? null, null, 'a null field reads back as null or absent');
  assert.ok(got.get('when') instanceof Date);
  assert.equal(got.get('when').toISOString(), '2024-05-01T12:34:56.789Z');
  const ref = got.get('ref');
  assert.ok(ref instanceof Parse.Object);
  assert.equal(ref.className, Item);
  assert.equal(ref.id, target.id);
  const gp = got.get('where');
  assert.ok(gp instanceof Parse.GeoPoint);
  assert.equal(gp.latitude, 40.5);
  assert.equal(gp.longitude, -30.25);
  const poly = got.get('area');
  assert.ok(poly instanceof Parse.Polygon);
  assert.deepEqual(poly.coordinates, [[0, 0], [0, 1], [1, 1], [0, 0]], 'a Polygon reads back closed');
  assert.deepEqual(got.get('obj'), { model: 'gpt', usage: { total: 12, parts: [1, 2] }, flag: true, empty: {} });
  assert.deepEqual(got.get('arr'), [1, 'two', { three: 3 }, [4], true, null]);
  assert.ok(got.get('dates')[0] instanceof Date);
  assert.equal(got.get('dates')[0].toISOString(), '2024-05-01T12:34:56.789Z');

  const schema = await new Parse.Schema(Typed).get();
  const types = Object.fromEntries(Object.entries(schema.fields).map(([k, v]) => [k, v.type]));
  assert.deepEqual(
    { s: types.s, num: types.num, yes: types.yes, when: types.when, ref: types.ref, where: types.where, area: types.area, obj: types.obj, arr: types.arr },
    { s: 'String', num: 'Number', yes: 'Boolean', when: 'Date', ref: 'Pointer', where: 'GeoPoint', area: 'Polygon', obj: 'Object', arr: 'Array' },
  );
  assert.equal(schema.fields.ref.targetClass, Item);
});

test('the REST form of typed fields is the §2.2 typed JSON', async () => {
  const target = await new Parse.Object(Item).save({ title: 'pointee2' });
  const o = await new Parse.Object(Typed).save(
    { when: new Date('2023-01-02T03:04:05.006Z'), ref: target, where: new Parse.GeoPoint(1, 2) },
    MASTER,
  );
  const r = await srv.rest('GET', `/classes/${Typed}/${o.id}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.when, { __type: 'Date', iso: '2023-01-02T03:04:05.006Z' });
  assert.deepEqual(r.json.ref, { __type: 'Pointer', className: Item, objectId: target.id });
  assert.deepEqual(r.json.where, { __type: 'GeoPoint', latitude: 1, longitude: 2 });
});

test('a Bytes value saved through the SDK reads back as the same {__type:"Bytes", base64}', async () => {
  const bytes = { __type: 'Bytes', base64: 'AAEC/w==' };
  const o = await new Parse.Object(Typed).save({ blob: bytes }, MASTER);
  const got = await new Parse.Query(Typed).get(o.id);
  assert.deepEqual(got.get('blob'), bytes);
  const r = await srv.rest('GET', `/classes/${Typed}/${o.id}`);
  assert.deepEqual(r.json.blob, bytes);
  const schema = await new Parse.Schema(Typed).get();
  assert.equal(schema.fields.blob.type, 'Bytes');
});

test('a File reference written over REST reads back through the SDK as a Parse.File with its name and url', async () => {
  const name = '0123456789abcdef0123456789abcdef_a.txt';
  const url = `${srv.url}/files/${srv.appId}/${name}`;
  const o = await new Parse.Object(Typed).save({ title: 'has file' }, MASTER);
  const put = await srv.rest('PUT', `/classes/${Typed}/${o.id}`, {
    master: true,
    body: { doc: { __type: 'File', name, url } },
  });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const got = await new Parse.Query(Typed).get(o.id);
  const f = got.get('doc');
  assert.ok(f instanceof Parse.File, `expected a Parse.File, got ${JSON.stringify(f)}`);
  assert.equal(f.name(), name);
  assert.equal(f.url(), url);
  const schema = await new Parse.Schema(Typed).get();
  assert.equal(schema.fields.doc.type, 'File');
});

test('Parse.Object.saveAll() of 45 new objects saves all of them (the SDK sends 3 batch requests of ≤20)', async () => {
  const controller = Parse.CoreManager.getRESTController();
  const batchSizes = [];
  const spy = {
    ...controller,
    request(method, path, data, options) {
      if (path === 'batch') batchSizes.push(data.requests.length);
      return controller.request(method, path, data, options);
    },
  };
  Parse.CoreManager.setRESTController(spy);
  let objs;
  try {
    objs = Array.from({ length: 45 }, (_, i) => new Parse.Object(Bulk).set({ n: i, marker: 'bulk45' }));
    await Parse.Object.saveAll(objs);
  } finally {
    Parse.CoreManager.setRESTController(controller);
  }
  assert.deepEqual(batchSizes, [20, 20, 5]);
  assert.equal(new Set(objs.map((o) => o.id)).size, 45);
  for (const o of objs) assert.match(o.id, /^[A-Za-z0-9]{10}$/);
  const q = new Parse.Query(Bulk).equalTo('marker', 'bulk45');
  assert.equal(await q.count(), 45);
  const all = await new Parse.Query(Bulk).equalTo('marker', 'bulk45').ascending('n').limit(100).find();
  assert.deepEqual(all.map((o) => o.get('n')), Array.from({ length: 45 }, (_, i) => i));

  // update them all in batches too
  for (const o of objs) o.increment('n', 100);
  await Parse.Object.saveAll(objs);
  const updated = await new Parse.Query(Bulk).equalTo('marker', 'bulk45').greaterThanOrEqualTo('n', 100).count();
  assert.equal(updated, 45);
});

test('Parse.Object.destroyAll() of 45 objects deletes every one of them', async () => {
  const objs = Array.from({ length: 45 }, (_, i) => new Parse.Object(Bulk).set({ n: i, marker: 'kill45' }));
  await Parse.Object.saveAll(objs);
  assert.equal(await new Parse.Query(Bulk).equalTo('marker', 'kill45').count(), 45);
  await Parse.Object.destroyAll(objs);
  assert.equal(await new Parse.Query(Bulk).equalTo('marker', 'kill45').count(), 0);
});

test('saveAll() without a transaction: one object of the wrong type fails with 111, the valid ones are saved', async () => {
  const objs = Array.from({ length: 4 }, (_, i) => new Parse.Object(Bulk).set({ n: i, marker: 'notx' }));
  objs[2].set('n', 'wrong type');
  await expectParseError(Parse.Object.saveAll(objs), 111, assert);
  assert.equal(await new Parse.Query(Bulk).equalTo('marker', 'notx').count(), 3);
  assert.equal(objs[2].id, undefined);
});

test('saveAll({transaction:true}) with one object of the wrong type fails and stores none of the objects', async () => {
  const objs = Array.from({ length: 6 }, (_, i) => new Parse.Object(Bulk).set({ n: i, marker: 'tx' }));
  objs[4].set('n', 'wrong type');
  let rejection;
  try {
    await Parse.Object.saveAll(objs, { transaction: true });
  } catch (e) {
    rejection = e;
  }
  assert.ok(rejection, 'the transactional saveAll must fail');
  // The SDK turns a failed batch request into Parse.Error(111, <server message>) for every
  // object of the batch and rejects with the array of them.
  const errors = Array.isArray(rejection) ? rejection : [rejection];
  assert.equal(errors.length, 6);
  for (const e of errors) {
    assert.ok(e instanceof Parse.Error, String(e));
    assert.equal(e.code, Parse.Error.INCORRECT_TYPE);
  }
  if (!srv.external) {
    // Parlor answers 400 with the failing item's error (protocol §4, §16), not a 500.
    assert.match(errors[0].message, /schema mismatch/i);
  }
  for (const o of objs) assert.equal(o.id, undefined);
  assert.equal(await new Parse.Query(Bulk).equalTo('marker', 'tx').count(MASTER), 0);
});

test('saveAll({transaction:true}) of valid objects saves all of them', async () => {
  const objs = Array.from({ length: 25 }, (_, i) => new Parse.Object(Bulk).set({ n: i, marker: 'txok' }));
  await Parse.Object.saveAll(objs, { transaction: true });
  assert.equal(await new Parse.Query(Bulk).equalTo('marker', 'txok').count(), 25);
});
