// Character Card import: V1/V2/V3 JSON and PNG images carrying the card.
import test from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { CardError, cardToPersona, importCard, pngTextChunks } from '../app/card.js';

const v2 = {
  spec: 'chara_card_v2',
  spec_version: '2.0',
  data: {
    name: 'Seraphina',
    description: '{{char}} is a guardian of the forest.',
    personality: 'kind, protective',
    scenario: '{{user}} wakes up in {{char}}\u2019s glade.',
    first_mes: '*{{char}} smiles* Welcome, traveller.',
    mes_example: '<START>\n{{user}}: Hi\n{{char}}: Hello!',
    system_prompt: 'You are {{char}}. Stay in character.',
    post_history_instructions: '',
    tags: ['fantasy', 3],
    creator: 'someone',
  },
};

function chunk(type, data) {
  const bytes = new Uint8Array(12 + data.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, data.length);
  bytes.set(Buffer.from(type, 'latin1'), 4);
  bytes.set(data, 8);
  return bytes; // CRC left zero: the reader does not need it
}

function png(...chunks) {
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const ihdr = chunk('IHDR', new Uint8Array(13));
  const iend = chunk('IEND', new Uint8Array(0));
  const parts = [signature, ihdr, ...chunks, iend];
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const text = (keyword, value) => chunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
const itxt = (keyword, value, compressed) => {
  const body = compressed ? deflateSync(Buffer.from(value, 'utf8')) : Buffer.from(value, 'utf8');
  return chunk('iTXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0, compressed ? 1 : 0, 0]), Buffer.from('en'), Buffer.from([0]), Buffer.from([0]), body]));
};
const base64 = (object) => Buffer.from(JSON.stringify(object), 'utf8').toString('base64');

test('a V2 card becomes a persona, placeholders filled', () => {
  const persona = cardToPersona(v2);
  assert.equal(persona.spec, 'v2');
  assert.equal(persona.name, 'Seraphina');
  assert.equal(persona.description, 'Seraphina is a guardian of the forest.');
  assert.equal(persona.greeting, '*Seraphina smiles* Welcome, traveller.');
  assert.match(persona.systemPrompt, /^You are Seraphina\. Stay in character\./);
  assert.match(persona.systemPrompt, /Personality: kind, protective/);
  assert.match(persona.systemPrompt, /Scenario: \{\{user\}\} wakes up in Seraphina/);
  assert.match(persona.systemPrompt, /Example dialogue:\n<START>/);
  assert.deepEqual(persona.tags, ['fantasy']);
});

test('V3 and V1 cards', () => {
  const v3 = { spec: 'chara_card_v3', spec_version: '3.0', data: { ...v2.data, name: 'Nova', nickname: 'N' } };
  assert.equal(cardToPersona(v3).spec, 'v3');
  assert.equal(cardToPersona(v3).name, 'Nova');
  const v1 = { name: 'Old', description: 'an old card', first_mes: 'Hi <USER>, I am <BOT>.' };
  assert.deepEqual(
    { spec: cardToPersona(v1).spec, greeting: cardToPersona(v1).greeting },
    { spec: 'v1', greeting: 'Hi {{user}}, I am Old.' },
  );
});

test('cards without a name or data are refused with a reason', () => {
  assert.throws(() => cardToPersona({ spec: 'chara_card_v2' }), CardError);
  assert.throws(() => cardToPersona({ spec: 'chara_card_v2', data: { name: '  ' } }), /no character name/);
  assert.throws(() => cardToPersona(null), CardError);
});

test('JSON files are read, with or without a BOM', async () => {
  const bytes = new TextEncoder().encode('\uFEFF' + JSON.stringify(v2));
  const persona = await importCard(bytes);
  assert.equal(persona.name, 'Seraphina');
  assert.equal(persona.isImage, false);
  await assert.rejects(importCard(new TextEncoder().encode('not json')), CardError);
});

test('a PNG with a tEXt chara chunk (V2, as SillyTavern exports)', async () => {
  const persona = await importCard(png(text('chara', base64(v2))));
  assert.equal(persona.name, 'Seraphina');
  assert.equal(persona.isImage, true);
});

test('a PNG with ccv3 is preferred over chara; iTXt, compressed or not', async () => {
  const v3 = { spec: 'chara_card_v3', data: { ...v2.data, name: 'Ünïcode Nova' } };
  const both = png(text('chara', base64(v2)), itxt('ccv3', base64(v3), false));
  assert.equal((await importCard(both)).name, 'Ünïcode Nova');
  const compressed = png(itxt('ccv3', base64(v3), true));
  assert.equal((await importCard(compressed)).name, 'Ünïcode Nova');
  const chunks = await pngTextChunks(compressed);
  assert.deepEqual(Object.keys(chunks), ['ccv3']);
});

test('a PNG without a card, and a cut PNG, are refused with a reason', async () => {
  await assert.rejects(importCard(png(text('Software', 'paint'))), /no character card/);
  const cut = png(text("chara", base64(v2))).slice(0, 50);
  await assert.rejects(importCard(cut), /cut short/);
  await assert.rejects(importCard(png(text('chara', '%%%not base64%%%'))), /not readable JSON/);
});
