// Parse.LiveQuery across a server restart: the SDK's client reconnects on its own, subscribes
// again, and events flow as before (the database is kept; the port is the same).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Parse, spawnServer, freePort, MASTER, uniqueClass } from './harness.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'parlor-sdk-restart-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function nextCreate(subscription, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no create event within ${ms} ms`)), ms);
    subscription.on('create', (object) => {
      clearTimeout(timer);
      resolve(object);
    });
  });
}

test('the SDK reconnects and resubscribes after the server restarts', { skip: !!process.env.PARLOR_SDK_TARGET_URL }, async () => {
  const port = await freePort();
  let server = await spawnServer({ dir, port });
  try {
    Parse.initialize(server.appId, undefined, server.masterKey);
    Parse.serverURL = server.url;
    Parse.liveQueryServerURL = server.url.replace(/^http/, 'ws');
    const Note = uniqueClass('Note');
    await new Parse.Object(Note).save({ text: 'setup' }, MASTER);
    const subscription = await new Parse.Query(Note).subscribe();
    await new Promise((resolve) => subscription.on('open', resolve));
    let first = nextCreate(subscription, 5000);
    await new Parse.Object(Note).save({ text: 'before' }, MASTER);
    assert.equal((await first).get('text'), 'before');

    await server.stop();
    server = await spawnServer({ dir, port });
    // The client retries with backoff; it is back once its subscription opens again.
    const reopened = new Promise((resolve) => subscription.on('open', resolve));
    await Promise.race([
      reopened,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no reconnect within 20 s')), 20_000)),
    ]);
    const again = nextCreate(subscription, 5000);
    await new Parse.Object(Note).save({ text: 'after' }, MASTER);
    assert.equal((await again).get('text'), 'after');
    await subscription.unsubscribe();
    await Parse.LiveQuery.close();
  } finally {
    await server.stop();
  }
});
