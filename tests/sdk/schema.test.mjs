// Parse.Schema (master key) through the JS SDK: create / get / addField / deleteField / delete,
// required + defaultValue, and the error codes of protocol §8.2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, uniqueClass, expectParseError } from './harness.mjs';

useServer();

const DEFAULT_OPS = ['find', 'count', 'get', 'create', 'update', 'delete', 'addField'];

test('Parse.Schema save() creates a class; get() shows the default and declared fields with their types', async () => {
  const C = uniqueClass('Sch');
  const s = new Parse.Schema(C);
  s.addString('title')
    .addNumber('n')
    .addBoolean('flag')
    .addDate('when')
    .addFile('doc')
    .addGeoPoint('loc')
    .addPolygon('area')
    .addArray('list')
    .addObject('meta')
    .addBytes('blob')
    .addPointer('owner', '_User')
    .addRelation('fans', '_User');
  const created = await s.save();
  assert.equal(created.className, C);
  const got = await new Parse.Schema(C).get();
  assert.equal(got.className, C);
  const f = got.fields;
  assert.deepEqual(f.objectId, { type: 'String' });
  assert.deepEqual(f.createdAt, { type: 'Date' });
  assert.deepEqual(f.updatedAt, { type: 'Date' });
  assert.deepEqual(f.ACL, { type: 'ACL' });
  assert.deepEqual(f.title, { type: 'String' });
  assert.deepEqual(f.n, { type: 'Number' });
  assert.deepEqual(f.flag, { type: 'Boolean' });
  assert.deepEqual(f.when, { type: 'Date' });
  assert.deepEqual(f.doc, { type: 'File' });
  assert.deepEqual(f.loc, { type: 'GeoPoint' });
  assert.deepEqual(f.area, { type: 'Polygon' });
  assert.deepEqual(f.list, { type: 'Array' });
  assert.deepEqual(f.meta, { type: 'Object' });
  assert.deepEqual(f.blob, { type: 'Bytes' });
  assert.deepEqual(f.owner, { type: 'Pointer', targetClass: '_User' });
  assert.deepEqual(f.fans, { type: 'Relation', targetClass: '_User' });
  assert.equal(Object.keys(f).length, 16);
});

test('a new class gets the default CLP: every operation public, protectedFields {"*":[]}', async () => {
  const C = uniqueClass('Clp');
  await new Parse.Schema(C).addString('x').save();
  const got = await new Parse.Schema(C).get();
  const clp = got.classLevelPermissions;
  for (const op of DEFAULT_OPS) assert.deepEqual(clp[op], { '*': true }, `CLP ${op}`);
  assert.deepEqual(clp.protectedFields, { '*': [] });
});

test('Parse.Schema.all() lists the created class and _User', async () => {
  const C = uniqueClass('All');
  await new Parse.Schema(C).addString('x').save();
  const all = await Parse.Schema.all();
  const classNames = all.map((s) => s.className);
  assert.ok(classNames.includes(C), `${C} missing from ${classNames}`);
  assert.ok(classNames.includes('_User'), `_User missing from ${classNames}`);
});

test('update() with addField adds the field: get() shows it and objects accept values of that type only', async () => {
  const C = uniqueClass('Add');
  await new Parse.Schema(C).addString('x').save();
  const s = new Parse.Schema(C);
  s.addNumber('score');
  await s.update();
  const got = await new Parse.Schema(C).get();
  assert.deepEqual(got.fields.score, { type: 'Number' });
  await new Parse.Object(C).save({ score: 3 });
  await expectParseError(new Parse.Object(C).save({ score: 'three' }), Parse.Error.INCORRECT_TYPE, assert);
});

test('update() with deleteField removes the field from the schema and from existing objects', async () => {
  const C = uniqueClass('Del');
  await new Parse.Schema(C).addString('x').addNumber('gone').save();
  const o = await new Parse.Object(C).save({ x: 'keep', gone: 5 });
  const s = new Parse.Schema(C);
  s.deleteField('gone');
  await s.update();
  const got = await new Parse.Schema(C).get();
  assert.equal(got.fields.gone, undefined);
  assert.deepEqual(got.fields.x, { type: 'String' });
  const obj = await new Parse.Query(C).get(o.id);
  assert.equal(obj.has('gone'), false);
  assert.equal(obj.get('x'), 'keep');
  // the name can be reused with another type afterwards
  await new Parse.Object(C).save({ gone: 'now a string' });
  assert.equal((await new Parse.Schema(C).get()).fields.gone.type, 'String');
});

test('adding a field that already exists (with another type) fails with 255; deleting a missing one fails with 255', async () => {
  const C = uniqueClass('Dup');
  await new Parse.Schema(C).addString('x').save();
  await expectParseError(new Parse.Schema(C).addNumber('x').update(), Parse.Error.INVALID_SCHEMA_OPERATION, assert);
  assert.deepEqual((await new Parse.Schema(C).get()).fields.x, { type: 'String' });
  await expectParseError(new Parse.Schema(C).deleteField('nope').update(), Parse.Error.INVALID_SCHEMA_OPERATION, assert);
});

test('creating a class that already exists fails with 103; getting a class that does not exist fails with 103', async () => {
  const C = uniqueClass('Twice');
  await new Parse.Schema(C).addString('x').save();
  await expectParseError(new Parse.Schema(C).addString('y').save(), Parse.Error.INVALID_CLASS_NAME, assert);
  await expectParseError(new Parse.Schema(uniqueClass('Never')).get(), Parse.Error.INVALID_CLASS_NAME, assert);
});

test('delete() of a class with objects fails with 255; after purge() delete() succeeds and the class is gone', async () => {
  const C = uniqueClass('Drop');
  await new Parse.Schema(C).addString('x').save();
  await new Parse.Object(C).save({ x: 'a' });
  await new Parse.Object(C).save({ x: 'b' });
  const err = await expectParseError(new Parse.Schema(C).delete(), Parse.Error.INVALID_SCHEMA_OPERATION, assert);
  assert.match(err.message, /not empty/);
  await new Parse.Schema(C).purge();
  assert.equal(await new Parse.Query(C).count({ useMasterKey: true }), 0);
  await new Parse.Schema(C).delete();
  await expectParseError(new Parse.Schema(C).get(), Parse.Error.INVALID_CLASS_NAME, assert);
});

test('delete() of an empty class removes it: a non-master create in it then fails with 119', async () => {
  const C = uniqueClass('Empty');
  await new Parse.Schema(C).addString('x').save();
  await new Parse.Schema(C).delete();
  const all = await Parse.Schema.all();
  assert.equal(all.some((s) => s.className === C), false);
  await expectParseError(new Parse.Object(C).save({ x: 'a' }), Parse.Error.OPERATION_FORBIDDEN, assert);
});

test('a field with defaultValue is filled in on create and returned in the save response', async () => {
  const C = uniqueClass('Def');
  await new Parse.Schema(C).addString('status', { defaultValue: 'pending' }).addNumber('n').save();
  const got = await new Parse.Schema(C).get();
  assert.deepEqual(got.fields.status, { type: 'String', defaultValue: 'pending' });
  const o = new Parse.Object(C);
  o.set('n', 1);
  await o.save();
  assert.equal(o.get('status'), 'pending', 'the create response carries the default');
  assert.equal((await new Parse.Query(C).get(o.id)).get('status'), 'pending');
  const p = await new Parse.Object(C).save({ status: 'done' });
  assert.equal((await new Parse.Query(C).get(p.id)).get('status'), 'done');
});

test('a required field missing on create fails with 142 and nothing is stored', async () => {
  const C = uniqueClass('Req');
  await new Parse.Schema(C).addString('must', { required: true }).addNumber('n').save();
  const got = await new Parse.Schema(C).get();
  assert.deepEqual(got.fields.must, { type: 'String', required: true });
  await expectParseError(new Parse.Object(C).save({ n: 1 }), Parse.Error.VALIDATION_ERROR, assert);
  assert.equal(await new Parse.Query(C).count({ useMasterKey: true }), 0);
  const ok = await new Parse.Object(C).save({ must: 'here', n: 2 });
  // unsetting it later fails too
  const s = Parse.Object.extend(C).createWithoutData(ok.id);
  s.unset('must');
  await expectParseError(s.save(), Parse.Error.VALIDATION_ERROR, assert);
  assert.equal((await new Parse.Query(C).get(ok.id)).get('must'), 'here');
});
