// How messages become the chat's items: order, regenerated siblings, author groups, days.
import test from 'node:test';
import assert from 'node:assert/strict';
import { authorKey, chainRoots, dayLabel, groupItems, threadItems, toolSummary } from '../app/thread.js';

const at = (minutes) => new Date(Date.UTC(2026, 10, 24, 10, 0) + minutes * 60_000).toISOString();
const user = (id, minutes, sender = 'u1') => ({ objectId: id, createdAt: at(minutes), role: 'user', sender: { objectId: sender } });
const reply = (id, minutes, parent, persona = 'p1') => ({
  objectId: id, createdAt: at(minutes), role: 'assistant', persona: { objectId: persona },
  ...(parent ? { parent: { __type: 'Pointer', className: 'Message', objectId: parent } } : {}),
});

test('items are in time order whatever the input order', () => {
  const items = threadItems([user('b', 2), user('a', 1), user('c', 3)]);
  assert.deepEqual(items.map((item) => item.message.objectId), ['a', 'b', 'c']);
});

test('regenerated replies fold into their first reply, the newest shown', () => {
  const messages = [user('q', 0), reply('r1', 1), user('q2', 2), reply('r2', 3, 'r1'), reply('r3', 4, 'r2')];
  const items = threadItems(messages);
  assert.deepEqual(items.map((item) => item.message.objectId), ['q', 'r3', 'q2']);
  assert.deepEqual(items[1].siblings.map((message) => message.objectId), ['r1', 'r2', 'r3']);
  assert.equal(items[1].index, 2);
  assert.equal(items[1].key, 'r1');
});

test('the reader picks a sibling', () => {
  const messages = [reply('r1', 1), reply('r2', 3, 'r1')];
  const items = threadItems(messages, new Map([['r1', 'r1']]));
  assert.equal(items[0].message.objectId, 'r1');
  assert.equal(items[0].index, 0);
});

test('a reply whose parent is not loaded groups under that parent id', () => {
  const roots = chainRoots([reply('r2', 3, 'gone'), reply('r3', 4, 'gone')]);
  assert.equal(roots.get('r2'), 'gone');
  assert.equal(roots.get('r3'), 'gone');
  const items = threadItems([reply('r2', 3, 'gone'), reply('r3', 4, 'gone')]);
  assert.equal(items.length, 1);
  assert.equal(items[0].siblings.length, 2);
});

test('a parent cycle does not loop', () => {
  const a = { ...reply('a', 1, 'b') };
  const b = { ...reply('b', 2, 'a') };
  assert.equal(threadItems([a, b]).length, 1);
});

test('consecutive messages of one author group; a pause, another author or a new day starts a group', () => {
  const messages = [user('a', 0), user('b', 1), user('c', 10), user('d', 11, 'u2'), reply('e', 12), reply('f', 13), user('g', 24 * 60)];
  const grouped = groupItems(threadItems(messages));
  assert.deepEqual(grouped.map((item) => item.startsGroup), [true, false, true, true, true, false, true]);
  assert.equal(grouped[0].dayBreak, true);
  assert.equal(grouped[1].dayBreak, false);
  assert.equal(grouped[6].dayBreak, true);
});

test('day labels', () => {
  const now = Date.parse('2026-11-24T12:00:00');
  assert.equal(dayLabel(Date.parse('2026-11-24T08:00:00'), now), 'Today');
  assert.equal(dayLabel(Date.parse('2026-11-23T08:00:00'), now), 'Yesterday');
  assert.match(dayLabel(Date.parse('2026-11-01T08:00:00'), now), /2026/);
});

test("a persona's tool calls are its own, one line each", () => {
  const call = {
    objectId: 't1', createdAt: at(2), role: 'tool', persona: { objectId: 'p1' },
    toolCall: { name: 'lookupOrder', arguments: { orderId: 'A1' }, result: { status: 'shipped' } },
  };
  assert.equal(authorKey(call), 'persona:p1');
  assert.equal(toolSummary(call), 'Used `lookupOrder`');
  const failed = { ...call, toolCall: { name: 'look`up', error: 'Object not\nfound.' } };
  assert.equal(toolSummary(failed), 'Used `lookup`: failed (Object not found.)');
  const items = threadItems([user('q', 0), reply('r1', 1), call]);
  assert.deepEqual(items.map((item) => item.message.objectId), ['q', 'r1', 't1']);
});
