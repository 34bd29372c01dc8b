// Who the console acts as: the master key typed into it, or a user whose `_User.role` is
// "admin" (logged in with username and password). Either is kept in sessionStorage, for
// this tab only, and sent with every request; everything goes through the public API, so
// the server's rules decide what each can see (an admin without the master key reads the
// schema and whatever its ACLs and CLPs allow; the operator's views need the master key).

import { Api } from '../api.js';
import { ApiError } from '../errors.js';

function readSettings() {
  const meta = document.querySelector('meta[name="parlor-settings"]');
  try {
    return JSON.parse(meta?.content ?? '{}');
  } catch {
    return {};
  }
}

export const settings = { appId: 'parlor', mountPath: '/parse', graphqlPath: '/graphql', ...readSettings() };

export const api = new Api({
  appId: settings.appId,
  mountPath: settings.mountPath,
  javascriptKey: settings.javascriptKey,
  storage: sessionStorage,
  storageKey: 'parlor.console',
});

/** 'master', 'admin' or null. */
export function identity() {
  if (api.masterKey) return 'master';
  if (api.token) return 'admin';
  return null;
}

/** A short name for who the console acts as. */
export function identityLabel() {
  if (api.masterKey) return 'Master key';
  if (api.user) return `${api.user.displayName || api.user.username} (admin)`;
  return 'Signed out';
}

/** Signs in with the master key, checked by a master-only request first. */
export async function signInWithMasterKey(masterKey) {
  const probe = new Api({ ...settings, storage: memoryStorage(), storageKey: 'probe' });
  probe.useMasterKey(masterKey);
  try {
    await probe.request('GET', '/serverInfo');
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      throw new ApiError(0, 'The server refused that master key (or this address may not use it: see --master-key-ips).', 403);
    }
    throw error;
  }
  api.forget();
  api.useMasterKey(masterKey);
}

/** Logs in a user; only one whose `role` is "admin" is let in (any other is logged out). */
export async function signInAsAdmin(username, password) {
  api.forget();
  const user = await api.logIn(username, password);
  if (user.role !== 'admin') {
    await api.logOut().catch(() => {});
    throw new ApiError(119, 'This account is not an admin. Ask an admin or the operator to give it the admin role, or use the master key.', 403);
  }
  return user;
}

/** Whether the saved credentials still hold (the key still works, the user is still an admin). */
export async function stillSignedIn() {
  if (api.masterKey) {
    try {
      await api.request('GET', '/serverInfo');
      return true;
    } catch (error) {
      if (error instanceof ApiError) api.forget();
      return !(error instanceof ApiError);
    }
  }
  if (api.token) {
    try {
      const me = await api.refreshMe();
      if (me.role === 'admin') return true;
      api.forget();
      return false;
    } catch (error) {
      return !(error instanceof ApiError) && Boolean(api.token);
    }
  }
  return false;
}

export async function signOut() {
  if (api.masterKey) api.forget();
  else await api.logOut().catch(() => {});
}

/** A Storage that keeps nothing beyond the page (for probing a key before keeping it). */
function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

/**
 * A request with other credentials than the console's own (the playground's identity
 * picker): `who` is `{kind: 'master'|'session'|'anonymous', token?}`. Answers what the
 * playground shows: status, headers, body text, parsed JSON, time, and the curl line.
 */
export async function rawRequest({ method, url, body, who, extraHeaders = {} }) {
  const headers = { 'X-Parse-Application-Id': settings.appId };
  if (settings.javascriptKey) headers['X-Parse-Javascript-Key'] = settings.javascriptKey;
  if (body !== undefined && body !== '') headers['Content-Type'] = 'application/json';
  if (who.kind === 'master' && api.masterKey) headers['X-Parse-Master-Key'] = api.masterKey;
  if (who.kind === 'session' && who.token) headers['X-Parse-Session-Token'] = who.token;
  Object.assign(headers, extraHeaders);
  const started = performance.now();
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined || body === '' ? undefined : body });
  } catch (error) {
    return { error: 'The server cannot be reached.', elapsed: performance.now() - started, curl: curlLine(method, url, headers, body) };
  }
  const text = await response.text();
  const elapsed = performance.now() - started;
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = undefined;
  }
  return {
    status: response.status,
    statusText: response.statusText,
    headers: [...response.headers.entries()],
    text,
    json,
    elapsed,
    curl: curlLine(method, url, headers, body),
  };
}

/** A curl command for the request; the master key is left as `$PARLOR_MASTER_KEY`. */
export function curlLine(method, url, headers, body) {
  const quote = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;
  const absolute = new URL(url, location.href).href;
  const parts = ['curl', '-sS'];
  if (method !== 'GET') parts.push('-X', method);
  parts.push(quote(absolute));
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'X-Parse-Master-Key') parts.push('-H', `"X-Parse-Master-Key: $PARLOR_MASTER_KEY"`);
    else parts.push('-H', quote(`${name}: ${value}`));
  }
  if (body !== undefined && body !== '') parts.push('--data-raw', quote(body));
  return parts.join(' ');
}
