// Live: the server's health (version, uptime, database, store load, memory and CPU,
// replies running) and its LiveQuery clients with their subscriptions per class, from
// `GET /serverStatus` (master key), read again every few seconds.

import { h, icon } from '../../dom.js';
import { ApiError, describeError } from '../../errors.js';
import { barChart, compact } from '../chart.js';
import { api } from '../session.js';

const EVERY = 3000;

function card(title, value, note) {
  return h('div', { class: 'stat-card' }, h('span', { class: 'stat-title' }, title), h('span', { class: 'stat-value' }, value), note ? h('span', { class: 'hint' }, note) : null);
}

function duration(seconds) {
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds % 60} s`;
  return `${seconds} s`;
}

export function liveView() {
  let timer = null;
  let destroyed = false;
  const body = h('div', { class: 'live-body' }, h('p', { class: 'muted', role: 'status' }, 'Loading…'));
  const updated = h('span', { class: 'hint', 'aria-live': 'off' });
  const element = h('section', { class: 'console-page live-page' },
    h('header', { class: 'console-header' }, h('h1', {}, 'Live'), h('div', { class: 'row' }, updated, h('button', { type: 'button', class: 'button', onclick: () => load() }, icon('regenerate'), 'Reload'))),
    body);

  async function load() {
    clearTimeout(timer);
    if (destroyed) return;
    try {
      const status = await api.request('GET', '/serverStatus');
      if (destroyed) return;
      draw(status);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        body.replaceChildren(h('p', { class: 'notice', role: 'alert' }, 'The server\u2019s status and its live clients are shown to the master key only: sign in with it to see them.'));
        return;
      }
      body.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, `The server does not answer: ${describeError(error)}`));
    }
    timer = setTimeout(load, EVERY);
  }

  function draw(status) {
    const live = status.liveQuery ?? {};
    const byClass = Object.entries(live.subscriptionsByClass ?? {}).sort((a, b) => b[1] - a[1]);
    const store = status.store ?? {};
    const generations = status.generations ?? {};
    body.replaceChildren(
      h('section', { class: 'pane', 'aria-labelledby': 'health-title' },
        h('h2', { id: 'health-title' }, 'Server health'),
        h('div', { class: 'stat-cards' },
          card('Status', status.status === 'ok' ? 'OK' : String(status.status), `Parlor ${status.version} · Parse ${status.parseServerVersion}`),
          card('Uptime', duration(status.uptimeSeconds ?? 0), `since ${new Date(status.startedAt).toLocaleString()}`),
          card('Database', status.database === 'postgresql' ? 'PostgreSQL' : 'SQLite', `${store.connectionsInUse ?? 0} of ${store.connections ?? 0} connections busy · writer queue ${store.writerQueue ?? 0}`),
          card('Memory', status.process ? `${compact(status.process.residentBytes / 1048576)} MB` : '–', status.process ? `${status.process.cpuSeconds.toFixed(1)} s of CPU` : ''),
          card('Replies running', String(generations.running ?? 0), generations.maxConcurrent ? `at most ${generations.maxConcurrent} at once, ${generations.maxPerUser} per user` : ''),
          card('Classes', String(status.classes ?? 0)))),
      h('section', { class: 'pane', 'aria-labelledby': 'live-title' },
        h('h2', { id: 'live-title' }, 'LiveQuery'),
        h('div', { class: 'stat-cards' },
          card('Connections', String(live.connections ?? 0), 'open WebSockets'),
          card('Users', String(live.users ?? 0), 'logged in, distinct'),
          card('Subscriptions', String(live.subscriptions ?? 0), `over ${byClass.length} class${byClass.length === 1 ? '' : 'es'}`)),
        h('div', { class: 'grid-2' },
          h('figure', { class: 'chart-figure' }, h('figcaption', {}, 'Subscriptions per class'),
            byClass.length
              ? barChart({ labels: byClass.map(([name]) => name), series: [{ name: 'Subscriptions', values: byClass.map(([, count]) => count), className: 'series-1' }], label: 'Subscriptions per class', unit: '' })
              : h('p', { class: 'muted' }, 'No subscription.')),
          h('div', { class: 'table-holder' }, h('table', { class: 'figures' },
            h('caption', {}, 'Subscriptions per class'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Class'), h('th', { scope: 'col', class: 'numeric' }, 'Subscriptions'))),
            h('tbody', {}, byClass.map(([name, count]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', { class: 'numeric' }, String(count)))))))),
        h('div', { class: 'table-holder' }, h('table', { class: 'figures clients' },
          h('caption', {}, `Clients (the ${Math.min(100, live.connections ?? 0)} connected last)`),
          h('thead', {}, h('tr', {}, ['Client', 'User', 'Address', 'Connected', 'Subscriptions'].map((title) => h('th', { scope: 'col' }, title)))),
          h('tbody', {}, (live.clients ?? []).length
            ? live.clients.map((client) => h('tr', {},
              h('th', { scope: 'row' }, h('code', {}, client.clientId.slice(0, 12))),
              h('td', {}, client.userId ? h('a', { href: `#/data/_User?id=${encodeURIComponent(client.userId)}` }, client.userId) : h('span', { class: 'muted' }, 'anonymous')),
              h('td', {}, client.address),
              h('td', {}, new Date(client.openedAt).toLocaleString()),
              h('td', {}, Object.entries(client.subscriptions ?? {}).map(([name, count]) => `${name} × ${count}`).join(', ') || '–')))
            : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No client is connected.')))))));
  }

  load();
  return {
    element,
    title: 'Live',
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}
