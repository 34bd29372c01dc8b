// The console's logic without a browser: the schema texts equal what `parlor schema` prints
// (fixtures written by the binary on a new database), the ER layout, typed values and the
// filter builder, CLP and ACL editing, the OpenAPI examples, and the usage figures.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { jsonExport, markdown, mermaid } from '../app/console/schema-doc.js';
import { layout } from '../app/console/er.js';
import { buildWhere, InputError, parseValue, formatValue, startsWithRegex } from '../app/console/values.js';
import { aclToRows, clpToModel, modelToClp, rowsToAcl } from '../app/console/clp.js';
import { exampleBody, operationsOf } from '../app/console/openapi.js';
import { failureCause, summarize } from '../app/console/usage.js';

const fixture = (name) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const schemas = JSON.parse(fixture('template-schemas.json')).results;
const descriptions = JSON.parse(readFileSync(new URL('../../template/descriptions.json', import.meta.url), 'utf8'));

test('the Mermaid source, dictionary and JSON are what `parlor schema` prints', () => {
  // The command ends its output with one newline of its own.
  assert.equal(`${mermaid(schemas)}\n`, fixture('template-schema.mmd'));
  assert.equal(`${markdown(schemas, descriptions)}\n`, fixture('template-dictionary.md'));
  assert.equal(`${jsonExport(schemas)}\n`, fixture('template-schemas.json'));
  // Whatever order `/schemas` lists the classes in.
  assert.equal(mermaid([...schemas].reverse()), mermaid(schemas));
});

test('the ER layout: a box per class without overlaps, a connector per pointer and relation', () => {
  const model = layout(schemas);
  assert.equal(model.nodes.length, schemas.length);
  for (const a of model.nodes) {
    assert.ok(a.x >= 0 && a.y >= 0 && a.x + a.width <= model.width && a.y + a.height <= model.height, a.name);
    for (const b of model.nodes) {
      if (a === b) continue;
      const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
      assert.ok(apart, `${a.name} overlaps ${b.name}`);
    }
  }
  const pointers = schemas.flatMap((schema) => Object.entries(schema.fields)
    .filter(([, field]) => field.targetClass)
    .map(([name, field]) => `${schema.className}.${name}→${field.targetClass}`));
  assert.deepEqual(model.edges.map((edge) => `${edge.from}.${edge.field}→${edge.to}`).sort(), pointers.sort());
  const message = model.nodes.find((node) => node.name === 'Message');
  assert.equal(message.fields[0].name, 'objectId');
  assert.equal(message.fields.find((field) => field.name === 'session').required, true);
  for (const edge of model.edges) assert.match(edge.path, /^M [\d.]+ [\d.]+ C /);
});

test('typed values: what a cell or filter takes, and the sentence when it is wrong', () => {
  assert.equal(parseValue('42', { type: 'Number' }), 42);
  assert.throws(() => parseValue('forty', { type: 'Number' }), InputError);
  assert.equal(parseValue('yes', { type: 'Boolean' }), true);
  assert.deepEqual(parseValue('2026-11-24T10:00:00Z', { type: 'Date' }), { __type: 'Date', iso: '2026-11-24T10:00:00.000Z' });
  assert.deepEqual(parseValue('abc123', { type: 'Pointer', targetClass: '_User' }), { __type: 'Pointer', className: '_User', objectId: 'abc123' });
  assert.throws(() => parseValue('not an id!', { type: 'Pointer', targetClass: '_User' }), /objectId/);
  assert.deepEqual(parseValue('{"a": 1}', { type: 'Object' }), { a: 1 });
  assert.throws(() => parseValue('[1]', { type: 'Object' }), /JSON object/);
  assert.throws(() => parseValue('{', { type: 'Array' }), /Not valid JSON/);
  assert.equal(parseValue('  spaced ', { type: 'String' }), '  spaced ');
  assert.equal(parseValue('', { type: 'Number' }), undefined);
  assert.equal(formatValue({ __type: 'Pointer', className: 'X', objectId: 'id1' }), 'id1');
  assert.equal(formatValue({ '*': { read: true }, u1: { read: true, write: true } }, { type: 'ACL' }), '*: r · u1: rw');
});

test('filter rows become a where, rows on one field combined', () => {
  const fields = { score: { type: 'Number' }, name: { type: 'String' }, owner: { type: 'Pointer', targetClass: '_User' }, tags: { type: 'Array' }, done: { type: 'Boolean' } };
  const where = buildWhere([
    { field: 'score', op: '$gt', value: '1' },
    { field: 'score', op: '$lte', value: '5' },
    { field: 'name', op: 'startsWith', value: 'a.b' },
    { field: 'owner', op: '$eq', value: 'u1' },
    { field: 'tags', op: '$all', value: 'x, y' },
    { field: 'done', op: '$exists', value: 'false' },
    { field: 'score', op: '$in', value: '1, 2' },
  ], fields);
  assert.deepEqual(where, {
    score: { $gt: 1, $lte: 5, $in: [1, 2] },
    name: { $regex: '^\\Qa.b\\E' },
    owner: { __type: 'Pointer', className: '_User', objectId: 'u1' },
    tags: { $all: ['x', 'y'] },
    done: { $exists: false },
  });
  assert.deepEqual(buildWhere([{ field: 'name', op: '$eq', value: 'x' }, { field: 'name', op: '$ne', value: 'y' }], fields), { name: { $eq: 'x', $ne: 'y' } });
  assert.throws(() => buildWhere([{ field: 'score', op: '$gt', value: 'lots' }], fields), /score: "lots" is not a number/);
  assert.equal(startsWithRegex('a\\Eb'), '^\\Qa\\E\\\\E\\Qb\\E');
});

test('CLP and ACL editors give back what they were given, and what was changed', () => {
  const clp = schemas.find((schema) => schema.className === 'ChatSession').classLevelPermissions;
  assert.deepEqual(modelToClp(clpToModel(clp)), clp);
  const model = clpToModel({});
  model.operations.find.public = true;
  model.operations.get.who = 'role:Admin, u1';
  model.operations.update.pointerFields = 'owner';
  model.readUserFields = 'owner';
  model.protectedFields = '{"*": ["secret"]}';
  const edited = modelToClp(model);
  assert.deepEqual(edited.find, { '*': true });
  assert.deepEqual(edited.get, { 'role:Admin': true, u1: true });
  assert.deepEqual(edited.update, { pointerFields: ['owner'] });
  assert.deepEqual(edited.readUserFields, ['owner']);
  assert.deepEqual(edited.protectedFields, { '*': ['secret'] });
  model.protectedFields = '[1]';
  assert.throws(() => modelToClp(model), /JSON object/);
  const acl = { u1: { read: true, write: true }, '*': { read: true } };
  assert.equal(aclToRows(acl)[0].who, '*');
  assert.deepEqual(rowsToAcl(aclToRows(acl)), { '*': { read: true }, u1: { read: true, write: true } });
  assert.deepEqual(rowsToAcl([{ who: ' role:Mods ', read: false, write: true }, { who: 'x', read: false, write: false }]), { 'role:Mods': { write: true } });
});

test('the playground lists OpenAPI operations and writes example bodies from their schemas', () => {
  const document = {
    paths: {
      '/classes/Message': { get: { tags: ['Message'], summary: 'Find', parameters: [{ name: 'where', in: 'query' }] }, post: { tags: ['Message'], summary: 'Create', requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/MessageInput' } } } } } },
      '/classes/Message/{objectId}': { parameters: [{ name: 'objectId', in: 'path', required: true }], put: { tags: ['Message'], summary: 'Update', requestBody: { content: { 'application/json': { schema: { allOf: [{ $ref: '#/components/schemas/MessageInput' }], required: [] } } } } } },
    },
    components: { schemas: {
      Pointer: { type: 'object', required: ['__type', 'className', 'objectId'], properties: { __type: { const: 'Pointer' }, className: { type: 'string' }, objectId: { type: 'string' } } },
      MessageInput: { type: 'object', required: ['session', 'content'], properties: {
        session: { allOf: [{ $ref: '#/components/schemas/Pointer' }], properties: { className: { const: 'ChatSession' } } },
        content: { type: 'string' },
        status: { type: 'string', default: 'complete' },
      } },
    } },
  };
  const operations = operationsOf(document);
  assert.deepEqual(operations.map((operation) => operation.id), ['GET /classes/Message', 'POST /classes/Message', 'PUT /classes/Message/{objectId}']);
  assert.equal(operations[2].parameters[0].name, 'objectId');
  assert.deepEqual(exampleBody(document, operations[1].requestBody), { session: { __type: 'Pointer', className: 'ChatSession', objectId: '' }, content: '' });
  assert.deepEqual(exampleBody(document, operations[2].requestBody), {});
});

test('usage figures: per day (gaps filled), persona, user; failures by cause; time to first token', () => {
  const usage = [
    { day: '2026-11-20', user: { objectId: 'u1' }, persona: { objectId: 'p1' }, promptTokens: 100, completionTokens: 20, totalTokens: 120 },
    { day: '2026-11-22', user: { objectId: 'u2' }, persona: { objectId: 'p1' }, promptTokens: 50, completionTokens: 10, totalTokens: 60, estimated: true },
    { day: '2026-11-22', user: { objectId: 'u1' }, persona: { objectId: 'p2' }, promptTokens: 10, completionTokens: 5, totalTokens: 15 },
  ];
  const replies = [
    { createdAt: '2026-11-20T10:00:00.000Z', status: 'complete', firstTokenMs: 300 },
    { createdAt: '2026-11-22T10:00:00.000Z', status: 'complete', firstTokenMs: 100 },
    { createdAt: '2026-11-22T11:00:00.000Z', status: 'failed', error: 'LLM request timed out after 60 s' },
    { createdAt: '2026-11-22T12:00:00.000Z', status: 'failed', error: 'No LLM provider is configured: set --llm-base-url' },
    { createdAt: '2026-11-22T13:00:00.000Z', status: 'cancelled', firstTokenMs: 200 },
  ];
  const summary = summarize(usage, replies, { personas: new Map([['p1', 'Sage']]), users: new Map([['u1', 'ada']]) });
  assert.deepEqual(summary.days.map((day) => [day.day, day.total, day.replies, day.failed]), [
    ['2026-11-20', 120, 1, 0], ['2026-11-21', 0, 0, 0], ['2026-11-22', 75, 4, 2],
  ]);
  assert.deepEqual(summary.byPersona.map((row) => [row.name, row.total, row.replies]), [['Sage', 180, 2], ['p2', 15, 1]]);
  assert.deepEqual(summary.byUser.map((row) => [row.name, row.total]), [['ada', 135], ['u2', 60]]);
  assert.deepEqual(summary.failures.byCause.map((row) => row.cause).sort(), ['no provider configured', 'timeout']);
  assert.deepEqual(summary.firstToken, { count: 3, p50: 200, p90: 300, max: 300 });
  assert.equal(summary.days[2].firstTokenP50, 100);
  assert.equal(summary.totals.estimated, 1);
  assert.equal(summary.statuses.cancelled, 1);
  // A period covers every one of its days, with or without replies.
  const period = summarize(usage, replies, {}, { from: '2026-11-18', to: '2026-11-23' });
  assert.deepEqual(period.days.map((day) => day.day), ['2026-11-18', '2026-11-19', '2026-11-20', '2026-11-21', '2026-11-22', '2026-11-23']);
  assert.equal(period.days[0].replies, 0);
  assert.equal(failureCause('The server generating this reply stopped'), 'server stopped');
  assert.equal(failureCause('HTTP 429: rate limit reached'), 'rate limited');
});
