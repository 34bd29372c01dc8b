// The console's entry (`/console`): sign-in with the master key or as an admin user, the
// shell (navigation beside the current screen), and routing by `#/…`. Screens: the data
// browser, the schema (ER diagram, dictionary, JSON, Mermaid), the API playground, AI
// usage with the replies running, and Live (LiveQuery clients, server health).

import { h, icon, toast } from '../dom.js';
import { ApiError } from '../errors.js';
import { api, identity, identityLabel, signOut, stillSignedIn } from './session.js';
import { loginView } from './views/login.js';
import { dataView } from './views/data.js';
import { schemaView } from './views/schema.js';
import { playgroundView } from './views/playground.js';
import { usageView } from './views/usage.js';
import { liveView } from './views/live.js';

const root = document.getElementById('app');
let current = null;

const SCREENS = [
  { route: 'data', label: 'Data', icon: 'context', view: dataView },
  { route: 'schema', label: 'Schema', icon: 'copy', view: schemaView },
  { route: 'api', label: 'API playground', icon: 'send', view: playgroundView },
  { route: 'usage', label: 'AI usage', icon: 'bot', view: usageView },
  { route: 'live', label: 'Live', icon: 'users', view: liveView },
];

applyTheme();

function applyTheme() {
  const saved = localStorage.getItem('parlor.theme') || 'system';
  const dark = saved === 'dark' || (saved === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}

/** `#/data/Message?…` → { parts: ['data', 'Message'], query: URLSearchParams }. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

function teardown() {
  current?.destroy?.();
  current = null;
}

function shell(active) {
  const nav = h(
    'nav',
    { class: 'console-nav', 'aria-label': 'Console' },
    h('div', { class: 'console-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'P'), h('span', {}, 'Parlor console')),
    h(
      'ul',
      { class: 'console-links' },
      SCREENS.map((screen) =>
        h('li', {}, h('a', { href: `#/${screen.route}`, class: screen.route === active ? 'active' : '', 'aria-current': screen.route === active ? 'page' : null }, icon(screen.icon), screen.label)),
      ),
    ),
    h(
      'div',
      { class: 'console-who' },
      h('span', { class: 'who-label' }, identity() === 'master' ? icon('check') : icon('user'), identityLabel()),
      h('button', { type: 'button', class: 'link-button', onclick: logOut }, 'Sign out'),
    ),
  );
  const main = h('main', { class: 'console-main', id: 'main', tabindex: '-1' });
  root.replaceChildren(h('a', { class: 'skip-link', href: '#main' }, 'Skip to content'), h('div', { class: 'console-shell' }, nav, main));
  return main;
}

async function logOut() {
  teardown();
  await signOut();
  location.hash = '#/login';
  render();
}

function render() {
  teardown();
  const { parts, query } = route();
  const [page, ...rest] = parts;
  if (!identity()) {
    current = loginView(() => {
      location.hash = page && page !== 'login' ? location.hash : '#/data';
      render();
    });
    root.replaceChildren(current.element);
    document.title = 'Sign in · Parlor console';
    current.focus?.();
    return;
  }
  const screen = SCREENS.find((item) => item.route === page);
  if (!screen) {
    location.replace('#/data');
    return;
  }
  const main = shell(screen.route);
  current = screen.view(rest, query);
  main.replaceChildren(current.element);
  document.title = `${current.title ?? screen.label} · Parlor console`;
}

/** Moves within the console without re-rendering the shell twice. */
window.addEventListener('hashchange', render);

// The API says the session ended (log-out elsewhere, demotion): back to the sign-in.
api.onSessionEnded = () => {
  teardown();
  toast('Your session has ended. Sign in again.', 'error');
  render();
};

window.addEventListener('unhandledrejection', (event) => {
  if (event.reason instanceof ApiError) {
    toast(event.reason.message, 'error');
    event.preventDefault();
  }
});

async function start() {
  if (identity() && !(await stillSignedIn())) {
    toast('Sign in again: the saved credentials no longer work here.', 'error');
  }
  render();
}

start();
