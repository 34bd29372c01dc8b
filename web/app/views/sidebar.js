// The session list beside every page: the user's chat sessions, newest activity first,
// kept live by a LiveQuery subscription (a session someone adds you to appears, one you
// leave disappears), with a filter, archived sessions on request, and the app's menu.

import { avatar, h, icon, iconButton, shortTime } from '../dom.js';
import { api, live, displayName } from '../store.js';
import { fileUrl } from '../api.js';

export class Sidebar {
  constructor({ onNavigate, onLogout, onTheme }) {
    this.sessions = new Map();
    this.selected = null;
    this.showArchived = false;
    this.filterText = '';
    this.list = h('ul', { class: 'session-list', 'aria-label': 'Chat sessions' });
    this.filter = h('input', {
      type: 'search', class: 'session-filter', placeholder: 'Filter sessions',
      'aria-label': 'Filter sessions by title',
      oninput: () => {
        this.filterText = this.filter.value.trim().toLowerCase();
        this.renderList();
      },
    });
    this.archivedToggle = h('button', {
      type: 'button', class: 'link-button', 'aria-pressed': 'false',
      onclick: () => {
        this.showArchived = !this.showArchived;
        this.archivedToggle.setAttribute('aria-pressed', String(this.showArchived));
        this.archivedToggle.textContent = this.showArchived ? 'Hide archived' : 'Show archived';
        this.renderList();
      },
    }, 'Show archived');
    this.themeButton = iconButton('moon', 'Dark theme', onTheme);
    this.updateTheme();
    this.meLink = h('a', { class: 'menu-link me', href: '#/profile' });
    this.renderMe();
    this.onMe = () => this.renderMe();
    window.addEventListener('parlor:me', this.onMe);
    this.element = h(
      'aside',
      { class: 'sidebar', 'aria-label': 'Sessions and menu', onclick: (event) => {
        if (event.target.closest('a')) onNavigate();
      } },
      h(
        'div',
        { class: 'sidebar-top' },
        h('a', { class: 'brand', href: '#/' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('bot')), 'Parlor'),
        h('a', { class: 'button primary new-session', href: '#/new' }, icon('plus'), 'New session'),
        this.filter,
      ),
      h('nav', { class: 'session-nav', 'aria-label': 'Sessions' }, this.list, h('div', { class: 'sidebar-more' }, this.archivedToggle)),
      h(
        'div',
        { class: 'sidebar-bottom' },
        h('a', { class: 'menu-link', href: '#/personas' }, icon('bot'), 'Personas'),
        h(
          'div',
          { class: 'me-row' },
          this.meLink,
          this.themeButton,
          iconButton('logout', 'Log out', onLogout),
        ),
      ),
    );
    this.unsubscribe = live.subscribe('ChatSession', {}, {
      onEvent: (op, object) => this.onEvent(op, object),
      onReconnect: () => this.load(),
    });
    this.load();
  }

  /** The signed-in user's link to the profile page (name and picture). */
  renderMe() {
    const me = api.user ?? {};
    this.meLink.setAttribute('aria-label', `Your profile (${me.username ?? ''})`);
    this.meLink.replaceChildren(avatar(displayName(me), fileUrl(me.avatar), 'user', 'small'),
      h('span', { class: 'me-name', text: displayName(me) }));
  }

  async load() {
    try {
      const answer = await api.find('ChatSession', { order: '-updatedAt', limit: 500 });
      this.sessions = new Map((answer.results ?? []).map((session) => [session.objectId, session]));
      this.loaded = true;
      this.renderList();
    } catch {
      // Offline: the list stays as it is; the live connection's return loads it again.
    }
  }

  onEvent(op, object) {
    if (op === 'leave' || op === 'delete') this.sessions.delete(object.objectId);
    else this.sessions.set(object.objectId, { ...this.sessions.get(object.objectId), ...object });
    this.renderList();
    window.dispatchEvent(new CustomEvent('parlor:session', { detail: { op, object } }));
  }

  /** A session as the list knows it (for the chat header before its own load). */
  session(id) {
    return this.sessions.get(id);
  }

  select(id) {
    this.selected = id;
    this.renderList();
  }

  focus() {
    this.filter.focus();
  }

  updateTheme() {
    const dark = document.documentElement.dataset.theme === 'dark';
    this.themeButton.replaceChildren(icon(dark ? 'sun' : 'moon'));
    const label = dark ? 'Switch to the light theme' : 'Switch to the dark theme';
    this.themeButton.setAttribute('aria-label', label);
    this.themeButton.title = label;
  }

  renderList() {
    const activity = (session) => session.lastMessageAt?.iso ?? session.updatedAt ?? session.createdAt ?? '';
    const sessions = [...this.sessions.values()]
      .filter((session) => this.showArchived || !session.archived || session.objectId === this.selected)
      .filter((session) => !this.filterText || (session.title ?? '').toLowerCase().includes(this.filterText))
      .sort((a, b) => (activity(a) < activity(b) ? 1 : -1));
    if (!sessions.length) {
      this.list.replaceChildren(
        h('li', { class: 'session-empty' }, this.loaded === undefined ? 'Loading…' : this.filterText ? 'No session matches.' : 'No sessions yet.'),
      );
      return;
    }
    this.list.replaceChildren(
      ...sessions.map((session) => {
        const title = session.title || 'Untitled session';
        const current = session.objectId === this.selected;
        return h(
          'li',
          {},
          h(
            'a',
            {
              class: `session-link${current ? ' current' : ''}${session.archived ? ' archived' : ''}`,
              href: `#/s/${encodeURIComponent(session.objectId)}`,
              'aria-current': current ? 'page' : null,
            },
            avatar(title, null, 'session', 'small'),
            h(
              'span',
              { class: 'session-text' },
              h('span', { class: 'session-title', text: title }),
              h('span', { class: 'session-meta', text: `${session.archived ? 'Archived · ' : ''}${shortTime(activity(session))}` }),
            ),
          ),
        );
      }),
    );
  }

  destroy() {
    this.unsubscribe?.();
    window.removeEventListener('parlor:me', this.onMe);
  }
}
