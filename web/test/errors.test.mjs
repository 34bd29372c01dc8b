// What a person is told when the API refuses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, describeError } from '../app/errors.js';
import { parseContextData } from '../app/context-data.js';

test('sign-up and log-in refusals', () => {
  assert.equal(describeError(new ApiError(202, 'Account already exists for this username.')), 'That username is taken. Pick another one.');
  assert.equal(describeError(new ApiError(101, 'Invalid username/password.')), 'Wrong username or password.');
  const locked = 'Your account is locked due to multiple failed login attempts. Please try again after 5 minute(s)';
  assert.equal(describeError(new ApiError(101, locked)), locked);
  assert.match(describeError(new ApiError(100, 'Too many log-in attempts; try again in a minute.', 429)), /Too many attempts/);
  assert.match(describeError(new ApiError(209, 'Invalid session token')), /log in again/);
});

test('other refusals keep the server\u2019s reason', () => {
  assert.match(describeError(new ApiError(119, 'Permission denied: the caller is not a participant of this session.')), /not allowed.*participant/);
  assert.equal(describeError(new ApiError(141, 'this session has no personas')), 'this session has no personas');
  assert.match(describeError(new TypeError('Failed to fetch')), /cannot be reached/);
});

test('Context data must be a JSON object', () => {
  assert.deepEqual(parseContextData('{"topic": "Lisbon"}'), { value: { topic: 'Lisbon' } });
  assert.match(parseContextData('{"topic": ').error, /Not valid JSON/);
  assert.match(parseContextData('[1, 2]').error, /must be a JSON object/);
  assert.match(parseContextData('null').error, /must be a JSON object/);
});
