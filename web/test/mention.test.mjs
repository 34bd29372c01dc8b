// @mention completion in the message box.
import test from 'node:test';
import assert from 'node:assert/strict';
import { applyMention, matchPersonas, mentionAt } from '../app/mention.js';

const personas = [{ name: 'Ada' }, { name: 'Adam Smith' }, { name: 'Bob' }];

test('a mention starts at an @ after a space or at the start', () => {
  assert.deepEqual(mentionAt('hi @ad', 6), { start: 3, query: 'ad' });
  assert.deepEqual(mentionAt('@', 1), { start: 0, query: '' });
  assert.equal(mentionAt('mail me at a@ex', 15), null);
  assert.equal(mentionAt('no mention', 10), null);
  assert.equal(mentionAt('@ada\nnext', 9), null);
});

test('names match by prefix, any case, shortest first; spaces work', () => {
  assert.deepEqual(matchPersonas(personas, 'ad').map((p) => p.name), ['Ada', 'Adam Smith']);
  assert.deepEqual(matchPersonas(personas, 'ADAM S').map((p) => p.name), ['Adam Smith']);
  assert.deepEqual(matchPersonas(personas, 'z'), []);
  assert.equal(matchPersonas(personas, '').length, 3);
});

test('picking a name completes it with a space after', () => {
  assert.deepEqual(applyMention('hi @ad what', 3, 6, 'Ada'), { text: 'hi @Ada what', caret: 8 });
  assert.deepEqual(applyMention('@', 0, 1, 'Adam Smith'), { text: '@Adam Smith ', caret: 12 });
});
