// Character Card import: a card as SillyTavern and other front-ends export it — JSON
// (V1 flat, V2 `chara_card_v2`, V3 `chara_card_v3`) or a PNG image whose `tEXt`/`iTXt`
// chunk `ccv3` (V3) or `chara` (V2) holds the card as base64 JSON — turned into the fields
// of a Persona. Pure (bytes in, fields out), so tested without a browser.

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export class CardError extends Error {}

function isPng(bytes) {
  return PNG_SIGNATURE.every((byte, index) => bytes[index] === byte);
}

function latin1(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The text chunks of a PNG: `{keyword: text}` (`tEXt`, `zTXt` and `iTXt`). */
export async function pngTextChunks(bytes) {
  if (!isPng(bytes)) throw new CardError('This is not a PNG image.');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks = {};
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1(bytes.subarray(offset + 4, offset + 8));
    const start = offset + 8;
    const end = start + length;
    if (end + 4 > bytes.length) throw new CardError('The PNG file is cut short.');
    const data = bytes.subarray(start, end);
    const nul = data.indexOf(0);
    if (nul > 0 && (type === 'tEXt' || type === 'zTXt' || type === 'iTXt')) {
      const keyword = latin1(data.subarray(0, nul));
      if (type === 'tEXt') {
        chunks[keyword] = latin1(data.subarray(nul + 1));
      } else if (type === 'zTXt') {
        chunks[keyword] = latin1(await inflate(data.subarray(nul + 2)));
      } else {
        const compressed = data[nul + 1] === 1;
        let rest = data.subarray(nul + 3);
        const languageEnd = rest.indexOf(0);
        rest = rest.subarray(languageEnd + 1);
        const translatedEnd = rest.indexOf(0);
        let text = rest.subarray(translatedEnd + 1);
        if (compressed) text = await inflate(text);
        chunks[keyword] = new TextDecoder().decode(text);
      }
    }
    if (type === 'IEND') return chunks;
    offset = end + 4;
  }
  throw new CardError('The PNG file is cut short.');
}

function decodeBase64Json(text) {
  try {
    const binary = atob(text.trim());
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Some exporters write the JSON itself rather than base64.
    try {
      return JSON.parse(text);
    } catch {
      throw new CardError('The card in this image is not readable JSON.');
    }
  }
}

/** The card object of a file's bytes (JSON text or PNG). */
export async function readCard(bytes) {
  if (isPng(bytes)) {
    const chunks = await pngTextChunks(bytes);
    const text = chunks.ccv3 ?? chunks.chara;
    if (!text) throw new CardError('This PNG image carries no character card (no "chara" or "ccv3" chunk).');
    return decodeBase64Json(text);
  }
  let text = new TextDecoder().decode(bytes).replace(/^\uFEFF/, '');
  try {
    return JSON.parse(text);
  } catch {
    throw new CardError('This file is neither a PNG character card nor card JSON.');
  }
}

function clean(value) {
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * A card (V1, V2 or V3 object) as Persona fields: `name`, `description`, `systemPrompt`,
 * `greeting`, plus `tags`, `creator` and `spec` for display. `{{char}}` becomes the
 * character's name; `{{user}}` stays for the model to read as "the user".
 */
export function cardToPersona(card) {
  if (!card || typeof card !== 'object') throw new CardError('A character card must be a JSON object.');
  const spec = card.spec === 'chara_card_v3' ? 'v3' : card.spec === 'chara_card_v2' ? 'v2' : 'v1';
  const data = spec === 'v1' ? card : card.data;
  if (!data || typeof data !== 'object') throw new CardError('The card has no "data" object.');
  const name = clean(data.name);
  if (!name) throw new CardError('The card has no character name.');
  const fill = (text) => clean(text).replace(/\{\{char\}\}|<BOT>/gi, name).replace(/<USER>/gi, '{{user}}');
  const sections = [];
  if (clean(data.system_prompt)) sections.push(fill(data.system_prompt));
  if (clean(data.personality)) sections.push(`Personality: ${fill(data.personality)}`);
  if (clean(data.scenario)) sections.push(`Scenario: ${fill(data.scenario)}`);
  if (clean(data.mes_example)) sections.push(`Example dialogue:\n${fill(data.mes_example)}`);
  if (clean(data.post_history_instructions)) sections.push(fill(data.post_history_instructions));
  return {
    spec,
    name,
    description: fill(data.description),
    systemPrompt: sections.join('\n\n'),
    greeting: fill(data.first_mes),
    tags: Array.isArray(data.tags) ? data.tags.filter((tag) => typeof tag === 'string') : [],
    creator: clean(data.creator),
  };
}

/** A file's bytes as Persona fields (see `cardToPersona`); `isImage` tells to use it as avatar. */
export async function importCard(bytes) {
  const card = await readCard(bytes);
  return { ...cardToPersona(card), isImage: isPng(bytes) };
}
