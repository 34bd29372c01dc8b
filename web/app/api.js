// The app's only way to the server: Parlor's public REST API under the mount path, with the
// app id and the user's own session token, plus a reply's SSE token stream. No private
// routes: everything here is what any Parse client may do.

import { ApiError } from './errors.js';
import { SseParser } from './stream.js';

const STORAGE_KEY = 'parlor.session';

export class Api {
  constructor({ appId, mountPath, javascriptKey }) {
    this.appId = appId;
    this.javascriptKey = javascriptKey ?? null;
    this.base = mountPath === '/' ? '' : mountPath.replace(/\/$/, '');
    const saved = readSaved();
    this.token = saved?.token ?? null;
    this.user = saved?.user ?? null;
    /** Called with no argument when the server says the session token is no longer valid. */
    this.onSessionEnded = () => {};
  }

  get liveUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${this.base || '/'}`;
  }

  headers(json = true) {
    const headers = { 'X-Parse-Application-Id': this.appId };
    if (this.javascriptKey) headers['X-Parse-Javascript-Key'] = this.javascriptKey;
    if (json) headers['Content-Type'] = 'application/json';
    if (this.token) headers['X-Parse-Session-Token'] = this.token;
    return headers;
  }

  async request(method, path, body, query) {
    let url = this.base + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value === undefined || value === null) continue;
        params.set(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    const response = await fetch(url, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const code = json?.code ?? 1;
      const error = new ApiError(code, json?.error ?? `HTTP ${response.status}`, response.status);
      if (code === 209 && this.token) {
        this.forget();
        this.onSessionEnded();
      }
      throw error;
    }
    return json;
  }

  remember(token, user) {
    this.token = token;
    this.user = user;
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ token, user }));
  }

  forget() {
    this.token = null;
    this.user = null;
    localStorage.removeItem(STORAGE_KEY);
  }

  async signUp({ username, password, email }) {
    const body = { username, password };
    if (email) body.email = email;
    const created = await this.request('POST', '/users', body);
    this.remember(created.sessionToken, null);
    return this.refreshMe();
  }

  async logIn(username, password) {
    const user = await this.request('POST', '/login', { username, password });
    const { sessionToken, ...profile } = user;
    this.remember(sessionToken, profile);
    return profile;
  }

  async logOut() {
    try {
      if (this.token) await this.request('POST', '/logout', {});
    } finally {
      this.forget();
    }
  }

  async refreshMe() {
    const me = await this.request('GET', '/users/me');
    const { sessionToken, ...profile } = me;
    this.remember(sessionToken || this.token, profile);
    return profile;
  }

  find(className, query = {}) {
    return this.request('GET', classPath(className), undefined, query);
  }

  get(className, objectId, query) {
    return this.request('GET', `${classPath(className)}/${encodeURIComponent(objectId)}`, undefined, query);
  }

  create(className, body) {
    return this.request('POST', classPath(className), body);
  }

  update(className, objectId, body) {
    return this.request('PUT', `${classPath(className)}/${encodeURIComponent(objectId)}`, body);
  }

  destroy(className, objectId) {
    return this.request('DELETE', `${classPath(className)}/${encodeURIComponent(objectId)}`);
  }

  async call(name, params) {
    const answer = await this.request('POST', `/functions/${encodeURIComponent(name)}`, params);
    return answer?.result;
  }

  /** Uploads a file (`POST /files/:name`) and answers the Parse File value to store. */
  async upload(file, name = file.name || 'file') {
    const safeName = name.replace(/[^\w.-]+/g, '_').slice(-100) || 'file';
    const headers = this.headers(false);
    headers['Content-Type'] = file.type || 'application/octet-stream';
    const response = await fetch(`${this.base}/files/${encodeURIComponent(safeName)}`, {
      method: 'POST',
      headers,
      body: file,
    });
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(json?.code ?? 1, json?.error ?? `HTTP ${response.status}`, response.status);
    return { __type: 'File', name: json.name, url: json.url };
  }

  /**
   * A reply's token stream: calls `onEvent({event, data})` for each `delta`/`done` until the
   * reply ends or `signal` aborts. Resolves when the stream closes.
   */
  async stream(messageId, onEvent, signal) {
    const response = await fetch(`${this.base}/messages/${encodeURIComponent(messageId)}/stream`, {
      headers: { ...this.headers(false), Accept: 'text/event-stream' },
      signal,
    });
    if (!response.ok || !response.body) return;
    const parser = new SseParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.push(value)) {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue;
        }
        onEvent({ event: event.event, data });
        if (event.event === 'done') {
          reader.cancel().catch(() => {});
          return;
        }
      }
    }
  }
}

function classPath(className) {
  if (className === '_User') return '/users';
  return `/classes/${encodeURIComponent(className)}`;
}

function readSaved() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null');
  } catch {
    return null;
  }
}

export function pointer(className, objectId) {
  return { __type: 'Pointer', className, objectId };
}

/**
 * A File value's URL, made relative when it points at this server's files, so an avatar
 * loads whatever host name the page was opened with (the page's CSP allows only this origin).
 */
export function fileUrl(file) {
  if (!file || typeof file.url !== 'string') return null;
  try {
    const url = new URL(file.url, location.href);
    if (url.pathname.includes('/files/')) return url.pathname + url.search;
    return url.href;
  } catch {
    return null;
  }
}
