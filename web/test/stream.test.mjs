// A reply's text from SSE deltas (byte offsets) and LiveQuery snapshots, in any order.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ReplyText, SseParser, byteLength } from '../app/stream.js';

test('deltas append in order', () => {
  const reply = new ReplyText();
  assert.ok(reply.applyDelta({ offset: 0, text: 'Hello' }));
  assert.ok(reply.applyDelta({ offset: 5, text: ' world' }));
  assert.equal(reply.text, 'Hello world');
});

test('offsets are UTF-8 bytes; an overlapping delta adds only what is new', () => {
  const reply = new ReplyText();
  reply.applyDelta({ offset: 0, text: 'héllo ' });
  assert.equal(reply.bytes, byteLength('héllo '));
  assert.ok(reply.applyDelta({ offset: byteLength('héllo '), text: '🙂 ok' }));
  // A late joiner's first delta repeats text already known.
  assert.equal(reply.applyDelta({ offset: 0, text: 'héllo 🙂' }), false);
  assert.ok(reply.applyDelta({ offset: byteLength('héllo '), text: '🙂 ok!' }));
  assert.equal(reply.text, 'héllo 🙂 ok!');
});

test('a delta after a gap waits for a snapshot', () => {
  const reply = new ReplyText('abc');
  assert.equal(reply.applyDelta({ offset: 10, text: 'xyz' }), false);
  assert.equal(reply.text, 'abc');
  assert.ok(reply.applySnapshot('abcdefghij', 'streaming'));
  assert.ok(reply.applyDelta({ offset: 10, text: 'xyz' }));
  assert.equal(reply.text, 'abcdefghijxyz');
});

test('a stale snapshot never shortens the text; the final one is the word', () => {
  const reply = new ReplyText();
  reply.applyDelta({ offset: 0, text: 'Hello there' });
  assert.equal(reply.applySnapshot('Hello', 'streaming'), false);
  assert.equal(reply.text, 'Hello there');
  assert.ok(reply.applySnapshot('Hello there, friend.', 'complete'));
  assert.equal(reply.text, 'Hello there, friend.');
  assert.equal(reply.applyDelta({ offset: 20, text: 'late' }), false);
  assert.equal(reply.final, true);
});

test('a cancelled reply keeps the text stored at the cancel', () => {
  const reply = new ReplyText();
  reply.applyDelta({ offset: 0, text: 'Partial answ' });
  reply.applySnapshot('Partial', 'cancelled');
  assert.equal(reply.text, 'Partial');
});

test('bad deltas are ignored', () => {
  const reply = new ReplyText('x');
  assert.equal(reply.applyDelta({ offset: -1, text: 'a' }), false);
  assert.equal(reply.applyDelta({ offset: 1.5, text: 'a' }), false);
  assert.equal(reply.applyDelta({ offset: 1 }), false);
});

test('SSE events are cut across chunk boundaries', () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push('id: 5\nevent: delta\ndata: {"offset":0,'), []);
  const events = parser.push('"text":"Hello"}\n\n: keep-alive\n\nevent: done\r\ndata: {"status":"complete"}\r\n\r\n');
  assert.deepEqual(events, [
    { event: 'delta', data: '{"offset":0,"text":"Hello"}', id: '5' },
    { event: 'done', data: '{"status":"complete"}', id: null },
  ]);
});
