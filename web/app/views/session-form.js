// Creating a session (title, people by username, personas, reply policy) and its settings
// page (the same fields, plus archive, leave and delete). The owner edits; other members
// see the settings and may leave.

import { avatar, confirmDialog, h, icon, toast } from '../dom.js';
import { describeError } from '../errors.js';
import { menuButton, navigate } from '../nav.js';
import { api, cachedUser, displayName, findUserByName, loadPeople, loadPersonas, searchUsers } from '../store.js';
import { fileUrl, pointer } from '../api.js';
import { field } from './auth.js';

const POLICIES = [
  ['all', 'Every persona answers, one after another'],
  ['round_robin', 'Personas take turns'],
  ['first', 'Only the first persona answers'],
  ['manual', 'Only when @mentioned'],
];

export function sessionFormView(sessionId) {
  const editing = Boolean(sessionId);
  const me = api.user;
  const state = { participants: new Map(), personas: new Set(), session: null, owner: true };
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const title = h('input', { id: 'session-title', maxlength: '200', placeholder: 'Trip to Lisbon' });
  const chips = h('ul', { class: 'chips', 'aria-label': 'People in this session' });
  const peopleInput = h('input', {
    id: 'session-people', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
    placeholder: 'Add someone by username', role: 'combobox', 'aria-autocomplete': 'list',
    'aria-expanded': 'false', 'aria-controls': 'people-suggestions',
  });
  const suggestions = h('ul', { class: 'suggestions', id: 'people-suggestions', role: 'listbox', 'aria-label': 'Matching people', hidden: true });
  const addButton = h('button', { type: 'button', class: 'button' }, 'Add');
  const personaList = h('div', { class: 'persona-choices', role: 'group', 'aria-labelledby': 'personas-label' });
  const policy = h('select', { id: 'session-policy' }, ...POLICIES.map(([value, label]) => h('option', { value, text: label })));
  const submit = h('button', { type: 'submit', class: 'button primary' }, editing ? 'Save changes' : 'Create session');
  const danger = h('div', { class: 'danger-zone', hidden: !editing });
  // The settings fill in once the session is loaded: until then they take no input, which the
  // load would overwrite (a title typed at once was saved as the old one).
  const loading = editing ? [title, peopleInput, addButton, policy, submit] : [];
  for (const control of loading) control.disabled = true;

  const renderChips = () => {
    chips.replaceChildren(...[...state.participants.values()].map((user) => h('li', { class: 'chip' },
      avatar(displayName(user), fileUrl(user.avatar), 'user', 'tiny'),
      h('span', { text: user.objectId === me?.objectId ? `${displayName(user)} (you)` : displayName(user) }),
      user.objectId === me?.objectId || !state.owner ? null : h('button', {
        type: 'button', class: 'chip-remove', 'aria-label': `Remove ${displayName(user)}`,
        onclick: () => {
          state.participants.delete(user.objectId);
          renderChips();
          peopleInput.focus();
        },
      }, icon('close')))));
  };

  const addUser = (user) => {
    state.participants.set(user.objectId, user);
    peopleInput.value = '';
    suggestions.hidden = true;
    peopleInput.setAttribute('aria-expanded', 'false');
    renderChips();
    peopleInput.focus();
  };

  const addTyped = async () => {
    const name = peopleInput.value.trim().replace(/^@/, '');
    if (!name) return;
    try {
      const user = await findUserByName(name);
      if (!user) return showError(`Nobody is called "${name}".`, peopleInput);
      error.hidden = true;
      addUser(user);
    } catch (failure) {
      showError(describeError(failure), peopleInput);
    }
  };
  addButton.addEventListener('click', addTyped);
  let searchTimer = 0;
  let found = [];
  let active = -1;
  const showSuggestions = () => {
    suggestions.replaceChildren(...found.map((user, index) => h('li', {
      role: 'option', id: `person-${index}`, class: 'suggestion', 'aria-selected': String(index === active),
      onmousedown: (event) => {
        event.preventDefault();
        addUser(user);
      },
    }, avatar(displayName(user), fileUrl(user.avatar), 'user', 'tiny'), h('span', { text: user.username }),
    user.displayName ? h('span', { class: 'muted', text: user.displayName }) : null)));
    suggestions.hidden = !found.length;
    peopleInput.setAttribute('aria-expanded', String(found.length > 0));
    if (active >= 0) peopleInput.setAttribute('aria-activedescendant', `person-${active}`);
    else peopleInput.removeAttribute('aria-activedescendant');
  };
  peopleInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const prefix = peopleInput.value.trim().replace(/^@/, '');
    if (!prefix) {
      found = [];
      showSuggestions();
      return;
    }
    searchTimer = setTimeout(async () => {
      try {
        found = (await searchUsers(prefix)).filter((user) => !state.participants.has(user.objectId));
      } catch {
        found = [];
      }
      active = -1;
      showSuggestions();
    }, 150);
  });
  peopleInput.addEventListener('keydown', (event) => {
    if ((event.key === 'ArrowDown' || event.key === 'ArrowUp') && found.length) {
      event.preventDefault();
      active = (active + (event.key === 'ArrowDown' ? 1 : -1) + found.length) % found.length;
      showSuggestions();
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (active >= 0 && found[active]) addUser(found[active]);
      else addTyped();
    } else if (event.key === 'Escape') {
      found = [];
      showSuggestions();
    }
  });
  peopleInput.addEventListener('blur', () => setTimeout(() => {
    suggestions.hidden = true;
  }, 150));

  const form = h('form', { class: 'form-card', novalidate: true },
    field('Title', title),
    h('div', { class: 'field' },
      h('label', { for: 'session-people', text: 'People' }),
      chips,
      h('div', { class: 'combo' }, h('div', { class: 'row' }, peopleInput, addButton), suggestions),
      h('p', { class: 'hint', text: 'Type a username; matching people appear as you type.' })),
    h('fieldset', { class: 'field' },
      h('legend', { id: 'personas-label', text: 'AI personas' }),
      personaList),
    field('Who answers', policy, 'When a message @mentions a persona by name, that persona answers whatever this says.'),
    error,
    h('div', { class: 'row' }, submit, h('a', { class: 'button', href: editing ? `#/s/${encodeURIComponent(sessionId)}` : '#/' }, 'Cancel')),
  );

  function showError(message, focus) {
    error.textContent = message;
    error.hidden = false;
    focus?.focus();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = {
      title: title.value.trim() || 'Untitled session',
      participants: [...state.participants.keys()].map((id) => pointer('_User', id)),
      personas: [...state.personas].map((id) => pointer('Persona', id)),
      policy: policy.value,
    };
    submit.disabled = true;
    try {
      if (editing) {
        await api.update('ChatSession', sessionId, body);
        toast('Session saved.');
        navigate(`/s/${sessionId}`);
      } else {
        const created = await api.create('ChatSession', body);
        navigate(`/s/${created.objectId}`);
      }
    } catch (failure) {
      showError(describeError(failure));
    } finally {
      submit.disabled = false;
    }
  });

  const load = async () => {
    let personas = [];
    try {
      personas = await loadPersonas();
    } catch (failure) {
      showError(describeError(failure));
    }
    if (editing) {
      try {
        state.session = await api.get('ChatSession', sessionId);
      } catch (failure) {
        showError(failure?.code === 101 ? 'This session does not exist, or you are not one of its members.' : describeError(failure));
        submit.disabled = true;
        return;
      }
      const session = state.session;
      state.owner = session.owner?.objectId === me?.objectId;
      title.value = session.title ?? '';
      policy.value = session.policy ?? 'all';
      const ids = [session.owner?.objectId, ...(session.participants ?? []).map((user) => user.objectId)].filter(Boolean);
      await loadPeople(ids, (session.personas ?? []).map((persona) => persona.objectId));
      for (const id of ids) state.participants.set(id, cachedUser(id) ?? { objectId: id, username: 'unknown' });
      for (const persona of session.personas ?? []) state.personas.add(persona.objectId);
      heading.textContent = session.title || 'Untitled session';
      renderDanger();
      if (state.owner) {
        for (const control of loading) control.disabled = false;
        if (document.activeElement === document.body) title.focus();
      } else {
        for (const control of form.querySelectorAll('input, select, button[type="submit"], .persona-choices input')) control.disabled = true;
        addButton.disabled = true;
        form.prepend(h('p', { class: 'notice', text: 'Only the session\u2019s owner can change these settings.' }));
      }
    } else if (me) {
      state.participants.set(me.objectId, me);
    }
    renderChips();
    personaList.replaceChildren(...(personas.length ? personas.map((persona) => {
      const box = h('input', {
        type: 'checkbox', id: `persona-${persona.objectId}`, checked: state.personas.has(persona.objectId),
        disabled: editing && !state.owner,
        onchange: () => (box.checked ? state.personas.add(persona.objectId) : state.personas.delete(persona.objectId)),
      });
      return h('label', { class: 'persona-choice', for: box.id }, box,
        avatar(persona.name, fileUrl(persona.avatar), 'persona', 'small'),
        h('span', { class: 'persona-choice-text' }, h('strong', { text: persona.name }),
          h('span', { class: 'muted', text: persona.description || persona.model || '' })));
    }) : [h('p', { class: 'muted' }, 'No personas yet. ', h('a', { href: '#/personas/new' }, 'Create one'), '.')]));
  };

  const renderDanger = () => {
    const session = state.session;
    const actions = [];
    if (state.owner) {
      actions.push(h('button', {
        type: 'button', class: 'button', onclick: async () => {
          try {
            await api.update('ChatSession', sessionId, { archived: !session.archived });
            toast(session.archived ? 'Session restored.' : 'Session archived.');
            navigate(session.archived ? `/s/${sessionId}` : '/');
          } catch (failure) {
            toast(describeError(failure), 'error');
          }
        },
      }, icon('archive'), session.archived ? 'Restore from archive' : 'Archive'));
      actions.push(h('button', {
        type: 'button', class: 'button danger', onclick: async () => {
          if (!(await confirmDialog('Delete this session?', 'Its messages stay stored but nobody can open the session any more.', 'Delete', true))) return;
          try {
            await api.destroy('ChatSession', sessionId);
            navigate('/');
          } catch (failure) {
            toast(describeError(failure), 'error');
          }
        },
      }, icon('trash'), 'Delete session'));
    } else {
      actions.push(h('button', {
        type: 'button', class: 'button danger', onclick: async () => {
          if (!(await confirmDialog('Leave this session?', 'You will no longer see its messages unless someone adds you again.', 'Leave', true))) return;
          try {
            await api.call('leaveSession', { sessionId });
            toast('You left the session.');
            navigate('/');
          } catch (failure) {
            toast(describeError(failure), 'error');
          }
        },
      }, icon('leave'), 'Leave session'));
    }
    danger.replaceChildren(h('h2', { text: state.owner ? 'Archive or delete' : 'Leave' }), h('div', { class: 'row' }, ...actions));
    danger.hidden = false;
  };

  const heading = h('h1', { text: editing ? 'Session settings' : 'New session' });
  const element = h('section', { class: 'page' },
    h('header', { class: 'page-header' }, menuButton(), heading),
    h('div', { class: 'page-body narrow' }, form, danger));
  load();
  return { element, title: editing ? 'Session settings' : 'New session', focus: () => title.focus() };
}
