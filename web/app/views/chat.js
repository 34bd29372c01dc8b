// A chat session: its history (newest page first, older pages as the reader scrolls up),
// new messages live (LiveQuery), persona replies growing token by token (the reply's SSE
// stream, with LiveQuery updates as the fallback), stop / regenerate / retry, sibling
// answers of a regenerated reply, @mention completion, search within the session that
// jumps to the hit (loading the history around it), and the Context panel.

import { avatar, h, icon, iconButton, shortTime, toast } from '../dom.js';
import { describeError } from '../errors.js';
import { parseMarkdown, toDom } from '../markdown.js';
import { applyMention, matchPersonas, mentionAt } from '../mention.js';
import { menuButton, navigate } from '../nav.js';
import { api, live, loadPeople, cachedPersona, cachedUser, displayName } from '../store.js';
import { pointer, fileUrl } from '../api.js';
import { ReplyText } from '../stream.js';
import { dayLabel, groupItems, threadItems, timeOf, chainRoots, toolSummary } from '../thread.js';
import { ContextPanel } from './context.js';

const PAGE = 50;
const WINDOW = 30;

export function chatView(sessionId) {
  const view = new ChatView(sessionId);
  return view;
}

class ChatView {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.session = null;
    this.messages = new Map();
    this.chosen = new Map();
    this.replies = new Map();
    this.elements = new Map();
    this.hasOlder = true;
    this.hasNewer = false;
    this.loadingOlder = false;
    this.loadingNewer = false;
    this.destroyed = false;
    this.lastUpdate = '';
    this.title = 'Chat';

    this.titleText = h('h1', { class: 'chat-title', text: ' ' });
    this.subtitle = h('p', { class: 'chat-subtitle', text: '' });
    this.topStatus = h('div', { class: 'history-edge', role: 'status' });
    this.bottomStatus = h('div', { class: 'history-edge bottom', hidden: true });
    this.list = h('div', { class: 'message-list' });
    this.scroller = h(
      'div',
      { class: 'messages', role: 'log', 'aria-label': 'Messages', tabindex: '0' },
      this.topStatus,
      this.list,
      this.bottomStatus,
    );
    this.latestButton = h('button', { type: 'button', class: 'jump-latest', hidden: true, onclick: () => this.jumpToLatest() },
      icon('down'), 'Jump to the latest');
    this.searchBar = this.buildSearch();
    this.context = new ContextPanel(sessionId, () => this.closeContext());
    this.composer = this.buildComposer();
    this.element = h(
      'section',
      { class: 'chat page', 'aria-labelledby': 'chat-title' },
      h(
        'header',
        { class: 'page-header chat-header' },
        menuButton(),
        h('div', { class: 'chat-heading' }, this.titleText, this.subtitle),
        h(
          'div',
          { class: 'header-actions' },
          (this.searchButton = iconButton('search', 'Search this session', () => this.toggleSearch(), { 'aria-expanded': 'false' })),
          (this.contextButton = iconButton('context', 'Context panel', () => this.toggleContext(), { 'aria-expanded': 'false', 'aria-controls': 'context-panel' })),
          h('a', { class: 'icon-button', href: `#/s/${encodeURIComponent(sessionId)}/settings`, 'aria-label': 'Session settings', title: 'Session settings' }, icon('edit')),
        ),
      ),
      this.searchBar,
      h('div', { class: 'chat-body' }, h('div', { class: 'chat-column' }, this.scroller, this.latestButton, this.composer.element), this.context.element),
    );
    this.titleText.id = 'chat-title';

    this.topObserver = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadOlder();
    }, { root: this.scroller, rootMargin: '600px 0px 0px 0px' });
    this.bottomObserver = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadNewer();
    }, { root: this.scroller, rootMargin: '0px 0px 600px 0px' });
    this.scroller.addEventListener('scroll', () => {
      if (this.atBottom()) this.latestButton.hidden = !this.hasNewer;
    });
    this.onSessionEvent = (event) => {
      const { op, object } = event.detail;
      if (object.objectId !== this.sessionId) return;
      if (op === 'leave' || op === 'delete') {
        toast('You no longer have access to this session.', 'error');
        navigate('/');
        return;
      }
      this.session = { ...this.session, ...object };
      this.renderHeader();
    };
    window.addEventListener('parlor:session', this.onSessionEvent);
    this.start();
  }

  focus() {
    this.composer.input.focus();
  }

  async start() {
    this.topStatus.textContent = 'Loading…';
    try {
      this.session = await api.get('ChatSession', this.sessionId);
    } catch (error) {
      this.showUnavailable(error);
      return;
    }
    if (this.destroyed) return;
    this.renderHeader();
    await this.loadPersonas();
    this.unsubscribe = live.subscribe('Message', { session: pointer('ChatSession', this.sessionId) }, {
      onEvent: (op, object) => this.onLive(op, object),
      // What changed after the last change seen before the drop is what was missed; events
      // that arrive before the catch-up query must not move that mark.
      onDisconnect: () => {
        this.missedSince ??= this.lastUpdate;
      },
      onReconnect: () => this.catchUp(),
    });
    await this.loadLatest();
  }

  showUnavailable(error) {
    const text = error?.code === 101
      ? 'This session does not exist, or you are not one of its members.'
      : describeError(error);
    this.element.replaceChildren(
      h('header', { class: 'page-header' }, menuButton(), h('h1', { text: 'Session unavailable' })),
      h('div', { class: 'empty-state' },
        h('div', { class: 'empty-mark', 'aria-hidden': 'true' }, icon('alert')),
        h('p', { class: 'unavailable', role: 'alert', text }),
        h('a', { class: 'button', href: '#/' }, 'Back to your sessions')),
    );
  }

  async loadPersonas() {
    const ids = (this.session.personas ?? []).map((persona) => persona.objectId).filter(Boolean);
    const users = [...(this.session.participants ?? []).map((user) => user.objectId), this.session.owner?.objectId];
    await loadPeople(users, ids);
    this.personas = ids.map((id) => cachedPersona(id)).filter(Boolean);
    this.renderHeader();
  }

  renderHeader() {
    if (!this.session) return;
    const title = this.session.title || 'Untitled session';
    this.title = title;
    document.title = `${title} · Parlor`;
    this.titleText.textContent = title;
    const people = new Set([this.session.owner?.objectId, ...(this.session.participants ?? []).map((user) => user.objectId)]);
    const names = [...people].filter(Boolean).map((id) => displayName(cachedUser(id)));
    const personaNames = (this.personas ?? []).map((persona) => persona.name);
    const parts = [];
    if (names.length) parts.push(names.join(', '));
    if (personaNames.length) parts.push(`with ${personaNames.join(', ')}`);
    if (this.session.archived) parts.push('archived');
    this.subtitle.textContent = parts.join(' · ');
  }

  // History ------------------------------------------------------------------------------

  sessionWhere(extra = {}) {
    return { session: pointer('ChatSession', this.sessionId), ...extra };
  }

  async fetchPage(where, order, limit) {
    const answer = await api.find('Message', { where: this.sessionWhere(where), order, limit });
    const results = answer.results ?? [];
    await loadPeople(
      results.map((message) => message.sender?.objectId),
      results.map((message) => message.persona?.objectId),
    );
    return results;
  }

  async loadLatest() {
    try {
      const page = await this.fetchPage({}, '-createdAt,-objectId', PAGE);
      if (this.destroyed) return;
      this.messages.clear();
      this.elements.clear();
      for (const message of page) this.remember(message);
      this.hasOlder = page.length === PAGE;
      this.hasNewer = false;
      this.render({ stick: true });
      this.observeEdges();
      for (const message of page) this.follow(message);
    } catch (error) {
      this.topStatus.textContent = describeError(error);
    }
  }

  oldest() {
    let oldest = null;
    for (const message of this.messages.values()) if (!oldest || timeOf(message) < timeOf(oldest)) oldest = message;
    return oldest;
  }

  newest() {
    let newest = null;
    for (const message of this.messages.values()) if (!newest || timeOf(message) > timeOf(newest)) newest = message;
    return newest;
  }

  async loadOlder() {
    if (!this.hasOlder || this.loadingOlder || this.destroyed) return;
    const oldest = this.oldest();
    if (!oldest) return;
    this.loadingOlder = true;
    this.topStatus.textContent = 'Loading earlier messages…';
    try {
      const page = await this.fetchPage({ createdAt: { $lte: { __type: 'Date', iso: oldest.createdAt } } }, '-createdAt,-objectId', PAGE);
      const fresh = page.filter((message) => !this.messages.has(message.objectId));
      for (const message of fresh) this.remember(message);
      this.hasOlder = page.length === PAGE && fresh.length > 0;
      this.render({ keepAnchor: true });
    } catch (error) {
      toast(describeError(error), 'error');
    } finally {
      this.loadingOlder = false;
      this.observeEdges();
    }
  }

  async loadNewer() {
    if (!this.hasNewer || this.loadingNewer || this.destroyed) return;
    const newest = this.newest();
    if (!newest) return;
    this.loadingNewer = true;
    try {
      const page = await this.fetchPage({ createdAt: { $gte: { __type: 'Date', iso: newest.createdAt } } }, 'createdAt,objectId', PAGE);
      const fresh = page.filter((message) => !this.messages.has(message.objectId));
      for (const message of fresh) this.remember(message);
      this.hasNewer = page.length === PAGE && fresh.length > 0;
      this.render({});
      for (const message of fresh) this.follow(message);
    } catch (error) {
      toast(describeError(error), 'error');
    } finally {
      this.loadingNewer = false;
      this.observeEdges();
    }
  }

  observeEdges() {
    this.topObserver.disconnect();
    this.bottomObserver.disconnect();
    this.topStatus.textContent = this.hasOlder ? 'Loading earlier messages…' : (this.messages.size ? 'This is the start of the session.' : '');
    if (this.hasOlder) this.topObserver.observe(this.topStatus);
    this.bottomStatus.hidden = !this.hasNewer;
    this.bottomStatus.textContent = this.hasNewer ? 'Loading later messages…' : '';
    this.latestButton.hidden = !this.hasNewer;
    if (this.hasNewer) this.bottomObserver.observe(this.bottomStatus);
  }

  /** After a reconnection: what changed while the connection was down. */
  async catchUp() {
    if (this.destroyed) return;
    try {
      this.session = await api.get('ChatSession', this.sessionId);
      this.renderHeader();
    } catch (error) {
      if (error?.code === 101) {
        this.showUnavailable(error);
        return;
      }
    }
    if (this.hasNewer) return;
    const since = this.missedSince ?? this.lastUpdate;
    this.missedSince = undefined;
    try {
      const changed = await this.fetchPage(since ? { updatedAt: { $gte: { __type: 'Date', iso: since } } } : {}, since ? 'updatedAt' : '-createdAt', 500);
      for (const message of changed) {
        this.remember(message);
        this.follow(message);
      }
      this.render({ stick: this.atBottom() });
    } catch {
      // Still offline; the next reconnection tries again.
    }
  }

  remember(message) {
    const known = this.messages.get(message.objectId);
    const merged = known ? { ...known, ...message } : message;
    this.messages.set(message.objectId, merged);
    if (merged.updatedAt && merged.updatedAt > this.lastUpdate) this.lastUpdate = merged.updatedAt;
    const reply = this.replies.get(message.objectId);
    if (reply) reply.text.applySnapshot(merged.content, merged.status);
    return merged;
  }

  // Live -------------------------------------------------------------------------------

  async onLive(op, object) {
    if (op === 'delete' || op === 'leave') {
      this.messages.delete(object.objectId);
      this.elements.delete(object.objectId);
      this.render({});
      return;
    }
    if (this.hasNewer && !this.messages.has(object.objectId)) {
      // Reading older history: the newest messages load when the reader comes back down.
      this.latestButton.hidden = false;
      return;
    }
    await loadPeople([object.sender?.objectId], [object.persona?.objectId]);
    const stick = this.atBottom() || object.sender?.objectId === api.user?.objectId;
    const isNew = !this.messages.has(object.objectId);
    const message = this.remember(object);
    if (isNew || !this.updateInPlace(message)) this.render({ stick });
    else if (stick) this.scrollToBottom();
    this.follow(message);
  }

  /** Streams a reply's tokens while it is `streaming` (once per message). */
  follow(message) {
    if (message.role !== 'assistant' || message.status !== 'streaming' || this.destroyed) return;
    let reply = this.replies.get(message.objectId);
    if (reply?.controller) return;
    if (!reply) {
      reply = { text: new ReplyText(message.content ?? '') };
      this.replies.set(message.objectId, reply);
    }
    reply.controller = new AbortController();
    const id = message.objectId;
    api
      .stream(id, ({ event, data }) => {
        if (event === 'delta' && reply.text.applyDelta(data)) this.scheduleText(id);
      }, reply.controller.signal)
      .catch(() => {})
      .finally(async () => {
        reply.controller = null;
        if (this.destroyed) return;
        // The stream ended (done, or the connection dropped): the stored message is the truth.
        try {
          const stored = await api.get('Message', id);
          this.remember(stored);
          if (!this.updateInPlace(this.messages.get(id))) this.render({ stick: this.atBottom() });
        } catch {
          // Offline: LiveQuery's catch-up brings it.
        }
      });
  }

  scheduleText(id) {
    const reply = this.replies.get(id);
    if (!reply || reply.frame) return;
    reply.frame = requestAnimationFrame(() => {
      reply.frame = 0;
      const stick = this.atBottom();
      const message = this.messages.get(id);
      if (message) this.updateInPlace(message);
      if (stick) this.scrollToBottom();
    });
  }

  textOf(message) {
    if (message.role === 'tool') return toolSummary(message);
    const reply = this.replies.get(message.objectId);
    if (reply) {
      reply.text.applySnapshot(message.content, message.status);
      return reply.text.text;
    }
    return message.content ?? '';
  }

  // Rendering ----------------------------------------------------------------------------

  atBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < 80;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  render({ stick = false, keepAnchor = false } = {}) {
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    const stickNow = stick || (!keepAnchor && this.atBottom() && !this.hasNewer);
    const items = groupItems(threadItems([...this.messages.values()], this.chosen));
    const nodes = [];
    for (const item of items) {
      if (item.dayBreak) nodes.push(h('div', { class: 'day-break', role: 'separator' }, h('span', { text: dayLabel(timeOf(item.message)) })));
      nodes.push(this.messageElement(item));
    }
    if (!items.length && !this.hasOlder) {
      nodes.push(h('div', { class: 'chat-empty' },
        h('p', { text: 'No messages yet. Say hello!' }),
        this.personas?.length ? h('p', { class: 'muted', text: `Type @ to call on ${this.personas.map((persona) => persona.name).join(', ')}.` }) : null));
    }
    this.list.replaceChildren(...nodes);
    this.updateComposerState();
    if (stickNow) this.scrollToBottom();
    else if (keepAnchor) this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
  }

  /** The element of one item, rebuilt only when what it shows changed. */
  messageElement(item) {
    const { message } = item;
    const text = this.textOf(message);
    const shape = [message.objectId, message.status, message.error, item.index, item.siblings.length, item.startsGroup].join('|');
    const cached = this.elements.get(item.key);
    if (cached && cached.shape === shape) {
      // A growing reply: only its text changes, so its buttons stay the same elements
      // (one rebuilt every frame could not be clicked).
      if (cached.text !== text) {
        fillContent(cached.content, text, message.status, cached.name);
        cached.text = text;
      }
      cached.item = item;
      return cached.element;
    }
    const element = this.buildMessage(item, text);
    this.elements.set(item.key, {
      shape, text, element, item, content: element.querySelector('.content'), name: element.dataset.author,
    });
    return element;
  }

  /** Updates the shown element of `message` without rebuilding the list; false if not shown. */
  updateInPlace(message) {
    const roots = chainRoots([...this.messages.values()]);
    const key = roots.get(message.objectId) ?? message.objectId;
    const cached = this.elements.get(key);
    if (!cached || cached.item.message.objectId !== message.objectId) return false;
    const item = { ...cached.item, message };
    const fresh = this.messageElement(item);
    if (fresh !== cached.element) {
      cached.element.replaceWith(fresh);
      this.updateComposerState();
    }
    return true;
  }

  buildMessage(item, text) {
    const { message, siblings, index, startsGroup } = item;
    // A persona's tool call shows as a short line of that persona's, with no actions.
    const tool = message.role === 'tool';
    const assistant = message.role === 'assistant' || tool;
    const system = message.role === 'system';
    const mine = !assistant && message.sender?.objectId === api.user?.objectId;
    const persona = assistant ? cachedPersona(message.persona?.objectId) : null;
    const user = !assistant ? cachedUser(message.sender?.objectId) : null;
    const name = assistant ? persona?.name ?? 'Persona' : system ? 'System' : mine ? 'You' : displayName(user);
    const picture = assistant ? fileUrl(persona?.avatar) : fileUrl(user?.avatar);
    const status = message.status ?? 'complete';
    const content = h('div', { class: 'content markdown' });
    fillContent(content, text, status, name);
    const actions = h('div', { class: 'message-actions', role: 'toolbar', 'aria-label': `Actions on ${name}’s message` });
    const foot = h('div', { class: 'message-foot' });
    if (siblings.length > 1) {
      const pick = (offset) => {
        const next = siblings[(index + offset + siblings.length) % siblings.length];
        this.chosen.set(item.key, next.objectId);
        this.render({});
        this.elements.get(item.key)?.element.querySelector('.sibling-nav button:last-child')?.focus();
      };
      foot.append(h('div', { class: 'sibling-nav', role: 'group', 'aria-label': 'Other answers' },
        iconButton('left', 'Previous answer', () => pick(-1), { disabled: siblings.length < 2 }),
        h('span', { class: 'sibling-count', text: `${index + 1} / ${siblings.length}` }),
        iconButton('right', 'Next answer', () => pick(1))));
    }
    if (tool) {
      // Nothing to copy, regenerate or stop: the reply that made the call has those.
    } else if (assistant && status === 'streaming') {
      foot.append(h('button', { type: 'button', class: 'chip-button', onclick: () => this.stop(message.objectId) }, icon('stop'), 'Stop'));
    } else if (assistant) {
      actions.append(iconButton('copy', 'Copy message', () => copy(text)));
      actions.append(iconButton('regenerate', 'Regenerate this answer', () => this.regenerate(message.objectId, item.key)));
    } else if (!system) {
      actions.append(iconButton('copy', 'Copy message', () => copy(text)));
    }
    let notice = null;
    if (status === 'failed') {
      notice = h('div', { class: 'message-error', role: 'alert' }, icon('alert'),
        h('span', { text: `The reply failed: ${message.error || 'no reason given'}` }),
        h('button', { type: 'button', class: 'chip-button', onclick: () => this.regenerate(message.objectId, item.key) }, icon('regenerate'), 'Retry'));
    } else if (status === 'cancelled') {
      notice = h('div', { class: 'message-note', text: 'Stopped.' });
    }
    const time = shortTime(message.createdAt);
    const element = h(
      'article',
      {
        class: `message ${assistant ? 'assistant' : system ? 'system' : 'user'}${tool ? ' tool' : ''}${mine ? ' mine' : ''}${startsGroup ? ' starts' : ' continues'} status-${status}`,
        id: `m-${message.objectId}`,
        'data-id': message.objectId,
        'data-author': name,
        'aria-label': `${name}, ${time}`,
        'aria-busy': status === 'streaming' ? 'true' : null,
        tabindex: '-1',
      },
      startsGroup ? avatar(mine ? displayName(api.user) : name, picture, assistant ? 'persona' : 'user') : h('span', { class: 'avatar-gap', 'aria-hidden': 'true' }),
      h(
        'div',
        { class: 'message-body' },
        startsGroup ? h('div', { class: 'message-head' },
          h('span', { class: 'author', text: name }),
          assistant ? h('span', { class: 'badge', text: 'AI' }) : null,
          h('time', { datetime: message.createdAt, text: time })) : null,
        content,
        notice,
        foot,
      ),
      actions,
    );
    return element;
  }

  // Actions ------------------------------------------------------------------------------

  streaming() {
    return [...this.messages.values()].filter((message) => message.role === 'assistant' && message.status === 'streaming');
  }

  updateComposerState() {
    const running = this.streaming().length > 0;
    this.composer.stop.hidden = !running;
  }

  async stop(messageId) {
    const ids = messageId ? [messageId] : this.streaming().map((message) => message.objectId);
    await Promise.all(ids.map(async (id) => {
      try {
        const message = await api.call('cancelGeneration', { messageId: id });
        if (message?.objectId) {
          this.remember(message);
          if (!this.updateInPlace(this.messages.get(id))) this.render({});
        }
      } catch (error) {
        toast(describeError(error), 'error');
      }
    }));
  }

  async regenerate(messageId, key) {
    try {
      const answer = await api.call('regenerate', { messageId });
      if (answer?.messageId) {
        this.chosen.set(key, answer.messageId);
        if (!this.messages.has(answer.messageId)) {
          const created = await api.get('Message', answer.messageId).catch(() => null);
          if (created) {
            this.remember(created);
            this.render({});
            this.follow(created);
          }
        } else {
          this.render({});
        }
      }
    } catch (error) {
      toast(describeError(error), 'error');
    }
  }

  async send(text) {
    const content = text.trim();
    if (!content) return false;
    try {
      const created = await api.create('Message', { session: pointer('ChatSession', this.sessionId), content });
      if (this.hasNewer) await this.loadLatest();
      const message = this.remember({
        role: 'user',
        status: 'complete',
        updatedAt: created.createdAt,
        ...created,
        content,
        session: pointer('ChatSession', this.sessionId),
        sender: pointer('_User', api.user?.objectId),
      });
      this.render({ stick: true });
      // The replies it started (`replies`): shown and streamed at once, without waiting for
      // their LiveQuery create (a later reply is created when its turn comes).
      for (const id of created.replies ?? []) this.fetchReply(id);
      return true;
    } catch (error) {
      toast(describeError(error, 'Sending failed'), 'error');
      return false;
    }
  }

  async fetchReply(id) {
    if (this.messages.has(id)) return;
    try {
      const reply = await api.get('Message', id);
      if (this.messages.has(id) || this.destroyed) return;
      await loadPeople([], [reply.persona?.objectId]);
      this.remember(reply);
      this.render({ stick: this.atBottom() });
      this.follow(this.messages.get(id));
    } catch {
      // Not created yet (its turn has not come): LiveQuery brings it.
    }
  }

  jumpToLatest() {
    if (this.hasNewer) this.loadLatest();
    else this.scrollToBottom();
    this.latestButton.hidden = true;
  }

  /** Shows message `id` (created at `createdAt`), loading the history around it if needed. */
  async jumpTo(id, createdAt) {
    if (!this.messages.has(id) && createdAt) {
      try {
        const at = { __type: 'Date', iso: createdAt };
        const [older, newer] = await Promise.all([
          this.fetchPage({ createdAt: { $lte: at } }, '-createdAt,-objectId', WINDOW),
          this.fetchPage({ createdAt: { $gt: at } }, 'createdAt,objectId', WINDOW),
        ]);
        this.messages.clear();
        this.elements.clear();
        for (const message of [...older, ...newer]) this.remember(message);
        this.hasOlder = older.length === WINDOW;
        this.hasNewer = newer.length === WINDOW;
        this.render({});
        this.observeEdges();
      } catch (error) {
        toast(describeError(error), 'error');
        return;
      }
    }
    const roots = chainRoots([...this.messages.values()]);
    const key = roots.get(id) ?? id;
    if (key !== id) {
      this.chosen.set(key, id);
      this.render({});
    }
    const element = this.list.querySelector(`#m-${CSS.escape(id)}`);
    if (!element) {
      toast('That message is no longer there.', 'error');
      return;
    }
    element.scrollIntoView({ block: 'center' });
    element.classList.remove('highlight');
    void element.offsetWidth;
    element.classList.add('highlight');
    element.focus({ preventScroll: true });
  }

  // Search -------------------------------------------------------------------------------

  buildSearch() {
    const input = h('input', { type: 'search', placeholder: 'Search this session', 'aria-label': 'Search messages in this session' });
    const results = h('ul', { class: 'search-results', 'aria-label': 'Search results' });
    const status = h('p', { class: 'search-status', role: 'status' });
    const form = h('form', { class: 'search-bar', hidden: true, role: 'search' },
      h('div', { class: 'search-row' }, icon('search'), input,
        h('button', { type: 'submit', class: 'button' }, 'Search'),
        iconButton('close', 'Close search', () => this.toggleSearch(false))),
      status, results);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const query = input.value.trim();
      if (!query) return;
      status.textContent = 'Searching…';
      results.replaceChildren();
      try {
        const hits = await api.call('searchContext', { sessionId: this.sessionId, query, limit: 20 });
        const messages = (hits ?? []).filter((hit) => hit.className === 'Message');
        status.textContent = messages.length ? `${messages.length} result${messages.length > 1 ? 's' : ''}` : 'Nothing found.';
        results.replaceChildren(...messages.map((hit) => h('li', {},
          h('button', { type: 'button', class: 'search-hit', onclick: () => this.jumpTo(hit.objectId, hit.createdAt?.iso ?? hit.createdAt) },
            h('span', { class: 'hit-snippet', text: hit.snippet ?? '' }),
            h('time', { text: shortTime(hit.createdAt?.iso ?? hit.createdAt) })))));
      } catch (error) {
        status.textContent = describeError(error);
      }
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.toggleSearch(false);
    });
    this.searchInput = input;
    return form;
  }

  toggleSearch(open = this.searchBar.hidden) {
    this.searchBar.hidden = !open;
    this.searchButton.setAttribute('aria-expanded', String(open));
    if (open) this.searchInput.focus();
    else this.searchButton.focus();
  }

  toggleContext() {
    const open = this.context.element.hidden;
    if (open) this.context.open(this.session, this.personas ?? []);
    else this.closeContext();
    this.contextButton.setAttribute('aria-expanded', String(open));
  }

  closeContext() {
    this.context.close();
    this.contextButton.setAttribute('aria-expanded', 'false');
    this.contextButton.focus();
  }

  // Composer -----------------------------------------------------------------------------

  buildComposer() {
    const input = h('textarea', {
      class: 'composer-input', rows: '1', placeholder: 'Write a message… (@ to call a persona)',
      'aria-label': 'Message', role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false',
      'aria-controls': 'mention-list',
    });
    const listbox = h('ul', { class: 'mention-list', id: 'mention-list', role: 'listbox', 'aria-label': 'Personas', hidden: true });
    const send = h('button', { type: 'submit', class: 'send-button', 'aria-label': 'Send message', title: 'Send (Enter)' }, icon('send'));
    const stop = h('button', { type: 'button', class: 'stop-button', hidden: true, onclick: () => this.stop() }, icon('stop'), 'Stop');
    const form = h('form', { class: 'composer' }, listbox, h('div', { class: 'composer-box' }, input, stop, send),
      h('p', { class: 'composer-hint', text: 'Enter to send · Shift+Enter for a new line · Markdown works' }));
    let matches = [];
    let active = 0;
    let mention = null;
    const closeList = () => {
      listbox.hidden = true;
      input.setAttribute('aria-expanded', 'false');
      input.removeAttribute('aria-activedescendant');
      matches = [];
    };
    const pick = (persona) => {
      const next = applyMention(input.value, mention.start, input.selectionStart, persona.name);
      input.value = next.text;
      input.setSelectionRange(next.caret, next.caret);
      closeList();
      autosize();
      input.focus();
    };
    const showList = () => {
      listbox.replaceChildren(...matches.map((persona, index) => {
        const option = h('li', {
          id: `mention-${index}`, role: 'option', class: 'mention-option', 'aria-selected': String(index === active),
          onmousedown: (event) => {
            event.preventDefault();
            pick(persona);
          },
        }, avatar(persona.name, fileUrl(persona.avatar), 'persona', 'small'), h('span', { text: persona.name }));
        return option;
      }));
      listbox.hidden = false;
      input.setAttribute('aria-expanded', 'true');
      input.setAttribute('aria-activedescendant', `mention-${active}`);
    };
    const autosize = () => {
      input.style.height = 'auto';
      input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
    };
    input.addEventListener('input', () => {
      autosize();
      mention = mentionAt(input.value, input.selectionStart);
      matches = mention ? matchPersonas(this.personas ?? [], mention.query) : [];
      active = 0;
      if (matches.length) showList();
      else closeList();
    });
    input.addEventListener('keydown', (event) => {
      if (matches.length && !listbox.hidden) {
        if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
          event.preventDefault();
          active = (active + (event.key === 'ArrowDown' ? 1 : -1) + matches.length) % matches.length;
          showList();
          return;
        }
        if (event.key === 'Enter' || event.key === 'Tab') {
          event.preventDefault();
          pick(matches[active]);
          return;
        }
        if (event.key === 'Escape') {
          event.preventDefault();
          closeList();
          return;
        }
      }
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    input.addEventListener('blur', () => setTimeout(closeList, 100));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = input.value;
      if (!text.trim()) return;
      send.disabled = true;
      const sent = await this.send(text);
      send.disabled = false;
      if (sent) {
        input.value = '';
        autosize();
      }
      input.focus();
    });
    return { element: form, input, stop };
  }

  destroy() {
    this.destroyed = true;
    this.unsubscribe?.();
    this.topObserver.disconnect();
    this.bottomObserver.disconnect();
    window.removeEventListener('parlor:session', this.onSessionEvent);
    for (const reply of this.replies.values()) {
      reply.controller?.abort();
      if (reply.frame) cancelAnimationFrame(reply.frame);
    }
    this.context.destroy();
  }
}

/** A message's text as Markdown in `content`; a caret (and dots before the first token) while it streams. */
function fillContent(content, text, status, name) {
  content.replaceChildren(toDom(parseMarkdown(text)));
  for (const pre of content.querySelectorAll('pre')) {
    pre.append(iconButton('copy', 'Copy code', () => copy(pre.querySelector('code')?.textContent ?? ''), { class: 'copy-code' }));
  }
  if (status === 'streaming') {
    // The caret follows the last word: inside the last paragraph or list item.
    let tail = content;
    while (tail.lastElementChild && /^(P|UL|OL|LI|BLOCKQUOTE|H[1-6])$/.test(tail.lastElementChild.tagName)) tail = tail.lastElementChild;
    tail.append(h('span', { class: 'caret', 'aria-hidden': 'true' }));
    if (!text) content.append(h('span', { class: 'thinking' }, h('span', { class: 'visually-hidden', text: `${name} is writing` }), h('i'), h('i'), h('i')));
  }
}

function copy(text) {
  navigator.clipboard?.writeText(text).then(
    () => toast('Copied.'),
    () => toast('Copying is not allowed here.', 'error'),
  );
}
