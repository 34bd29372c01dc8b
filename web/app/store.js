// What the views share: the API and LiveQuery clients, the signed-in user, and caches of
// the people and personas the chat names (read through the API with the user's rights).

import { Api } from './api.js';
import { Live } from './live.js';

function settings() {
  const meta = document.querySelector('meta[name="parlor-settings"]');
  try {
    return JSON.parse(meta?.content ?? '{}');
  } catch {
    return {};
  }
}

const { appId = 'parlor', mountPath = '/parse', javascriptKey, graphqlPath } = settings();

/** Where the developer tools are: the GraphQL playground (when GraphQL is on) and the console. */
export const developerLinks = [
  graphqlPath ? { href: `${graphqlPath.replace(/\/$/, '')}/playground`, label: 'GraphQL playground' } : null,
  { href: '/console', label: 'Console' },
].filter(Boolean);

export const api = new Api({ appId, mountPath, javascriptKey });
export const live = new Live(api);

/** objectId → public profile `{objectId, username, displayName, avatar}`. */
const users = new Map();
/** objectId → Persona as the user may read it. */
const personas = new Map();
const pending = { _User: new Map(), Persona: new Map() };

export function displayName(user) {
  return user?.displayName || user?.username || 'Someone';
}

export function cachedUser(objectId) {
  return users.get(objectId);
}

export function cachedPersona(objectId) {
  return personas.get(objectId);
}

export function rememberPersona(persona) {
  personas.set(persona.objectId, persona);
}

export function rememberUser(user) {
  users.set(user.objectId, { ...users.get(user.objectId), ...user });
}

/** Loads the users and personas named by ids that are not cached yet. */
export async function loadPeople(userIds, personaIds) {
  await Promise.all([
    loadMissing('_User', userIds, users, { keys: 'username,displayName,avatar' }),
    loadMissing('Persona', personaIds, personas, {}),
  ]);
}

async function loadMissing(className, ids, cache, extra) {
  const wanted = [...new Set(ids)].filter((id) => id && !cache.has(id));
  const waiting = [];
  const fetch = [];
  for (const id of wanted) {
    if (pending[className].has(id)) waiting.push(pending[className].get(id));
    else fetch.push(id);
  }
  if (fetch.length) {
    const request = api
      .find(className, { where: { objectId: { $in: fetch } }, limit: fetch.length, ...extra })
      .then((answer) => {
        for (const object of answer.results ?? []) cache.set(object.objectId, object);
      })
      .catch(() => {})
      .finally(() => {
        for (const id of fetch) pending[className].delete(id);
      });
    for (const id of fetch) pending[className].set(id, request);
    waiting.push(request);
  }
  await Promise.all(waiting);
}

/** Users whose username or display name starts with `prefix` (for adding participants). */
export async function searchUsers(prefix) {
  const pattern = `^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`;
  const answer = await api.find('_User', {
    where: {
      $or: [
        { username: { $regex: pattern, $options: 'i' } },
        { displayName: { $regex: pattern, $options: 'i' } },
      ],
    },
    keys: 'username,displayName,avatar',
    limit: 8,
  });
  const found = answer.results ?? [];
  for (const user of found) rememberUser(user);
  return found;
}

/** The user named exactly `username` (any case), or null. */
export async function findUserByName(username) {
  const answer = await api.find('_User', {
    where: { username: { $regex: `^${username.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, $options: 'i' } },
    keys: 'username,displayName,avatar',
    limit: 1,
  });
  const user = answer.results?.[0] ?? null;
  if (user) rememberUser(user);
  return user;
}

/** Every persona the user may use, by name. */
export async function loadPersonas() {
  const answer = await api.find('Persona', { order: 'name', limit: 500 });
  for (const persona of answer.results ?? []) personas.set(persona.objectId, persona);
  return answer.results ?? [];
}

export function theme() {
  return localStorage.getItem('parlor.theme') || 'system';
}

export function applyTheme(value = theme()) {
  localStorage.setItem('parlor.theme', value);
  const dark = value === 'dark' || (value === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}
