// The app's entry: theme, routing (`#/…` so every page is a static URL the server need not
// know), the shell (session list beside the current page), the connection banner, and
// what happens when the session token stops being valid.

import { h, icon, toast } from './dom.js';
import { menuButton, navigate, onOpenSidebar } from './nav.js';
import { api, live, applyTheme } from './store.js';
import { authView } from './views/auth.js';
import { Sidebar } from './views/sidebar.js';
import { chatView } from './views/chat.js';
import { sessionFormView } from './views/session-form.js';
import { personasView, personaEditView } from './views/personas.js';
import { profileView } from './views/profile.js';

applyTheme();
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme());

const root = document.getElementById('app');
let shell = null;
let sidebar = null;
let current = null;

/** The parts of the hash route: `#/s/abc` → ['s', 'abc']. */
function route() {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

function teardown() {
  current?.destroy?.();
  current = null;
}

function buildShell() {
  const main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
  const banner = h('div', { class: 'connection', role: 'status', hidden: true });
  sidebar = new Sidebar({
    onNavigate: () => shell.classList.remove('sidebar-open'),
    onLogout: logOut,
    onTheme: toggleTheme,
  });
  const scrim = h('div', { class: 'scrim', onclick: () => shell.classList.remove('sidebar-open') });
  shell = h('div', { class: 'shell' }, sidebar.element, scrim, main, banner);
  root.replaceChildren(h('a', { class: 'skip-link', href: '#main' }, 'Skip to content'), shell);
  live.onStatus((state) => {
    banner.hidden = state === 'open';
    banner.replaceChildren(icon('alert'), state === 'connecting' ? 'Connecting…' : 'Connection lost. Reconnecting…');
  });
  live.start();
  return main;
}

onOpenSidebar(() => {
  shell?.classList.add('sidebar-open');
  sidebar?.focus();
});

function toggleTheme() {
  const dark = document.documentElement.dataset.theme === 'dark';
  applyTheme(dark ? 'light' : 'dark');
  sidebar?.updateTheme();
}

async function logOut() {
  teardown();
  live.stop();
  sidebar?.destroy();
  shell = null;
  sidebar = null;
  await api.logOut().catch(() => {});
  navigate('/login');
}

api.onSessionEnded = () => {
  teardown();
  live.stop();
  sidebar?.destroy();
  shell = null;
  sidebar = null;
  toast('Your session has ended. Please log in again.', 'error');
  navigate('/login');
};

function render() {
  teardown();
  const [page, id, sub] = route();
  if (!api.token) {
    shell = null;
    const mode = page === 'signup' ? 'signup' : 'login';
    const after = page === 'login' || page === 'signup' || !page ? '/' : `/${route().join('/')}`;
    current = authView(mode, async () => {
      navigate(after === '/login' ? '/' : after);
    });
    root.replaceChildren(current.element);
    document.title = mode === 'signup' ? 'Sign up · Parlor' : 'Log in · Parlor';
    markFirstScreen();
    return;
  }
  if (page === 'login' || page === 'signup') {
    navigate('/');
    return;
  }
  const main = shell ? shell.querySelector('#main') : buildShell();
  let view;
  if (page === 's' && id && sub === 'settings') view = sessionFormView(id);
  else if (page === 's' && id) view = chatView(id);
  else if (page === 'new') view = sessionFormView(null);
  else if (page === 'personas' && id) view = personaEditView(id === 'new' ? null : id);
  else if (page === 'personas') view = personasView();
  else if (page === 'profile') view = profileView();
  else view = homeView();
  current = view;
  main.replaceChildren(view.element);
  sidebar.select(page === 's' ? id : null);
  document.title = `${view.title ?? 'Parlor'} · Parlor`;
  view.focus?.();
  markFirstScreen();
}

/** Marks when the first screen is on the page, for the end-to-end test's timing. */
function markFirstScreen() {
  if (!performance.getEntriesByName('parlor:first-screen').length) performance.mark('parlor:first-screen');
}

function homeView() {
  const element = h(
    'section',
    { class: 'page home' },
    h('header', { class: 'page-header' }, menuButton(), h('h1', { text: 'Parlor' })),
    h(
      'div',
      { class: 'empty-state' },
      h('div', { class: 'empty-mark', 'aria-hidden': 'true' }, icon('bot')),
      h('h2', { text: `Welcome${api.user?.username ? `, ${api.user.displayName || api.user.username}` : ''}` }),
      h('p', { text: 'Chat with people and AI personas in real time. Pick a session on the left, or start a new one.' }),
      h(
        'div',
        { class: 'row' },
        h('a', { class: 'button primary', href: '#/new' }, icon('plus'), 'New session'),
        h('a', { class: 'button', href: '#/personas' }, icon('bot'), 'Personas'),
      ),
    ),
  );
  return { element, title: 'Home' };
}

window.addEventListener('hashchange', render);

async function start() {
  if (api.token) {
    try {
      await api.refreshMe();
    } catch (error) {
      if (!api.token) {
        render();
        return;
      }
      // The server is down: keep the saved session and show what can be shown.
    }
  }
  render();
}

start();
