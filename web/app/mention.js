// `@mention` completion in the message box: which persona names complete what the writer
// is typing, and the text once one is picked. The server answers a persona whose
// `@Name` (any case, whole name) appears in a message, so names with spaces work too.

/**
 * The mention being typed at `caret`: `{start, query}` where `start` is the index of the
 * `@`, or null. An `@` counts at the start of the text or after a space or punctuation
 * (not inside an email address), and the query stops at a line break.
 */
export function mentionAt(text, caret) {
  const before = text.slice(0, caret);
  const at = before.lastIndexOf('@');
  if (at < 0) return null;
  if (at > 0 && /[\w.+-]/.test(before[at - 1])) return null;
  const query = before.slice(at + 1);
  if (query.includes('\n') || query.length > 40) return null;
  return { start: at, query };
}

/** The personas whose name starts with `query` (any case), the closest first. */
export function matchPersonas(personas, query) {
  const needle = query.toLowerCase();
  return personas
    .filter((persona) => (persona.name ?? '').toLowerCase().startsWith(needle))
    .sort((a, b) => a.name.length - b.name.length || a.name.localeCompare(b.name));
}

/** The text with the mention at `start..caret` replaced by `@name `, and the new caret. */
export function applyMention(text, start, caret, name) {
  const inserted = `@${name} `;
  const after = text.slice(caret).replace(/^ /, '');
  return { text: text.slice(0, start) + inserted + after, caret: start + inserted.length };
}
