// How a session's messages become what the chat shows: ordered by time, regenerated replies
// folded into one place with their siblings (a reply made by `regenerate` points at the one
// it replaces through `parent`), consecutive messages of one author grouped, and a day
// heading where the date changes. Pure functions over plain message objects (the REST
// shape), so they are tested without a browser.

/** Messages closer together than this (same author) share one header. */
export const GROUP_GAP_MS = 5 * 60 * 1000;

export function timeOf(message) {
  const value = message.createdAt;
  return typeof value === 'string' ? Date.parse(value) : Date.parse(value?.iso ?? '') || 0;
}

/** The order of the history: creation time, then objectId (as the server pages it). */
export function compareMessages(a, b) {
  const difference = timeOf(a) - timeOf(b);
  if (difference) return difference;
  return a.objectId < b.objectId ? -1 : a.objectId > b.objectId ? 1 : 0;
}

/** Who wrote a message: `user:<id>`, `persona:<id>` (its replies and tool calls), or `system`. */
export function authorKey(message) {
  if (message.role === 'assistant' || message.role === 'tool') return `persona:${message.persona?.objectId ?? '?'}`;
  if (message.role === 'system') return 'system';
  return `user:${message.sender?.objectId ?? '?'}`;
}

/**
 * What a persona's tool call (`role: "tool"`, with `toolCall: {name, result | error}`) shows
 * in the chat: one line of Markdown naming the tool, and its error when it failed.
 */
export function toolSummary(message) {
  const call = message.toolCall ?? {};
  const name = String(call.name ?? 'a tool').replace(/[`\\]/g, '');
  if (typeof call.error === 'string') return `Used \`${name}\`: failed (${call.error.replace(/\s+/g, ' ')})`;
  return `Used \`${name}\``;
}

/**
 * The root of each message's regeneration chain (`parent` links, followed through the
 * messages that are loaded): objectId → root objectId.
 */
export function chainRoots(messages) {
  const byId = new Map(messages.map((message) => [message.objectId, message]));
  const roots = new Map();
  const rootOf = (message) => {
    if (roots.has(message.objectId)) return roots.get(message.objectId);
    let current = message;
    const seen = new Set();
    while (current.parent?.objectId) {
      if (seen.has(current.objectId)) {
        // A cycle (only hand-made data has one): its smallest id stands for it.
        current = { objectId: [...seen].sort()[0] };
        break;
      }
      seen.add(current.objectId);
      const parent = byId.get(current.parent.objectId);
      if (!parent) {
        // The parent is not loaded (or was deleted): it is still the chain's root.
        current = { objectId: current.parent.objectId };
        break;
      }
      current = parent;
    }
    roots.set(message.objectId, current.objectId);
    return current.objectId;
  };
  for (const message of messages) rootOf(message);
  return roots;
}

/**
 * The items to show, in order: one per message, except that the replies of one
 * regeneration chain make one item, shown where the chain's first loaded reply is.
 * `chosen` maps a chain's root to the sibling the reader picked; by default the newest.
 * Each item: `{message, siblings, index, key}` where `siblings` are the chain's replies in
 * creation order and `index` the position of the shown one.
 */
export function threadItems(messages, chosen = new Map()) {
  const sorted = [...messages].sort(compareMessages);
  const roots = chainRoots(sorted);
  const chains = new Map();
  for (const message of sorted) {
    const root = roots.get(message.objectId);
    if (!chains.has(root)) chains.set(root, []);
    chains.get(root).push(message);
  }
  const items = [];
  const placed = new Set();
  for (const message of sorted) {
    const root = roots.get(message.objectId);
    if (placed.has(root)) continue;
    placed.add(root);
    const siblings = chains.get(root);
    const pick = chosen.get(root);
    let index = siblings.findIndex((sibling) => sibling.objectId === pick);
    if (index < 0) index = siblings.length - 1;
    items.push({ key: root, message: siblings[index], siblings, index });
  }
  return items;
}

function dayOf(time) {
  const date = new Date(time);
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/**
 * Marks each item with `startsGroup` (a new author, or a pause of GROUP_GAP_MS) and
 * `dayBreak` (the first item of a calendar day, in local time).
 */
export function groupItems(items) {
  let previous = null;
  return items.map((item) => {
    const time = timeOf(item.message);
    const author = authorKey(item.message);
    const dayBreak = !previous || dayOf(previous.time) !== dayOf(time);
    const startsGroup =
      dayBreak || !previous || previous.author !== author || time - previous.time > GROUP_GAP_MS ||
      author === 'system';
    previous = { time, author };
    return { ...item, startsGroup, dayBreak };
  });
}

/** A day heading: "Today", "Yesterday", or the date. */
export function dayLabel(time, now = Date.now()) {
  const day = dayOf(time);
  if (day === dayOf(now)) return 'Today';
  if (day === dayOf(now - 86_400_000)) return 'Yesterday';
  return new Date(time).toLocaleDateString(undefined, {
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
  });
}
