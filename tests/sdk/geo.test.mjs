// Geo queries through the JS SDK: near (sorted by distance, with km/miles/radians limits),
// withinGeoBox, withinPolygon, withinRadians-style centerSphere, polygonContains, and a
// LiveQuery subscription with a geo constraint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, useServer, uniqueClass, createClass, sleep } from './harness.mjs';

const Place = uniqueClass('Place');
const Area = uniqueClass('Area');
const names = (results) => results.map((o) => o.get('name'));

const sf = new Parse.GeoPoint(37.7749, -122.4194);
const srv = useServer(async () => {
  await createClass(Place, { name: { type: 'String' }, at: { type: 'GeoPoint' } });
  await createClass(Area, { name: { type: 'String' }, shape: { type: 'Polygon' } });
  for (const [name, latitude, longitude] of [
    ['sf', 37.7749, -122.4194],
    ['oakland', 37.8044, -122.2712],
    ['la', 34.0522, -118.2437],
    ['ny', 40.7128, -74.006],
  ]) {
    await new Parse.Object(Place).save({ name, at: new Parse.GeoPoint(latitude, longitude) });
  }
  await new Parse.Object(Area).save({
    name: 'bay',
    shape: new Parse.Polygon([[37.0, -123.0], [38.5, -123.0], [38.5, -122.0], [37.0, -122.0]]),
  });
});

test('near sorts by distance; withinKilometers / withinMiles / withinRadians limit it', async () => {
  void srv;
  const near = await new Parse.Query(Place).near('at', sf).find();
  assert.deepEqual(names(near), ['sf', 'oakland', 'la', 'ny']);
  assert.deepEqual(names(await new Parse.Query(Place).withinKilometers('at', sf, 20).find()), ['sf', 'oakland']);
  assert.deepEqual(names(await new Parse.Query(Place).withinMiles('at', sf, 400).find()), ['sf', 'oakland', 'la']);
  assert.deepEqual(names(await new Parse.Query(Place).withinRadians('at', sf, 0.01).find()), ['sf', 'oakland']);
  // An explicit order wins over the distance order.
  const byName = await new Parse.Query(Place).withinMiles('at', sf, 400).ascending('name').find();
  assert.deepEqual(names(byName), ['la', 'oakland', 'sf']);
});

test('withinGeoBox, withinPolygon and polygonContains', async () => {
  const box = await new Parse.Query(Place)
    .withinGeoBox('at', new Parse.GeoPoint(33, -123), new Parse.GeoPoint(38, -118))
    .ascending('name')
    .find();
  assert.deepEqual(names(box), ['la', 'oakland', 'sf']);
  const polygon = await new Parse.Query(Place)
    .withinPolygon('at', [new Parse.GeoPoint(37, -123), new Parse.GeoPoint(38.5, -123), new Parse.GeoPoint(38.5, -122), new Parse.GeoPoint(37, -122)])
    .ascending('name')
    .find();
  assert.deepEqual(names(polygon), ['oakland', 'sf']);
  const containing = await new Parse.Query(Area).polygonContains('shape', sf).find();
  assert.deepEqual(names(containing), ['bay']);
  const outside = await new Parse.Query(Area).polygonContains('shape', new Parse.GeoPoint(40.7, -74)).find();
  assert.deepEqual(names(outside), []);
});

test('a LiveQuery subscription with withinKilometers hears only nearby creates', async () => {
  const query = new Parse.Query(Place).withinKilometers('at', sf, 50);
  const subscription = await query.subscribe();
  const heard = [];
  subscription.on('create', (object) => heard.push(object.get('name')));
  await sleep(200);
  await new Parse.Object(Place).save({ name: 'far', at: new Parse.GeoPoint(48.85, 2.35) });
  await new Parse.Object(Place).save({ name: 'near', at: new Parse.GeoPoint(37.78, -122.41) });
  for (let i = 0; i < 50 && heard.length === 0; i += 1) await sleep(100);
  await sleep(200);
  assert.deepEqual(heard, ['near']);
  await subscription.unsubscribe();
  // Close the socket before the server stops, or the client would keep reconnecting (and the
  // test process would never end).
  await Parse.LiveQuery.close();
});
