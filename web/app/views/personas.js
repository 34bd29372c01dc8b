// Personas: the list of those the user may use, and a page to create or edit one (name,
// avatar, description, system prompt, greeting, provider and model, temperature, max
// tokens, tools, who may use it), or to fill one from a Character Card (JSON or PNG).

import { avatar, confirmDialog, h, icon, toast } from '../dom.js';
import { describeError } from '../errors.js';
import { menuButton, navigate } from '../nav.js';
import { api, findUserByName, loadPeople, cachedUser, displayName, loadPersonas, rememberPersona } from '../store.js';
import { fileUrl } from '../api.js';
import { CardError, importCard } from '../card.js';
import { field } from './auth.js';

export function personasView() {
  const grid = h('ul', { class: 'persona-grid', 'aria-label': 'Personas' }, h('li', { class: 'muted' }, 'Loading…'));
  const element = h('section', { class: 'page' },
    h('header', { class: 'page-header' }, menuButton(), h('h1', { text: 'Personas' }),
      h('div', { class: 'header-actions' }, h('a', { class: 'button primary', href: '#/personas/new' }, icon('plus'), 'New persona'))),
    h('div', { class: 'page-body' },
      h('p', { class: 'muted', text: 'AI characters that answer in your sessions. Create one, or import a Character Card from SillyTavern and others.' }),
      grid));
  loadPersonas().then((personas) => {
    if (!personas.length) {
      grid.replaceChildren(h('li', { class: 'muted' }, 'No personas yet.'));
      return;
    }
    grid.replaceChildren(...personas.map((persona) => h('li', {},
      h('a', { class: 'persona-card', href: `#/personas/${encodeURIComponent(persona.objectId)}` },
        avatar(persona.name, fileUrl(persona.avatar), 'persona', 'large'),
        h('span', { class: 'persona-card-text' },
          h('strong', { text: persona.name }),
          h('span', { class: 'muted clamp', text: persona.description || 'No description.' }),
          h('span', { class: 'tag', text: [persona.provider, persona.model].filter(Boolean).join(' · ') || 'default model' }))))));
  }, (error) => grid.replaceChildren(h('li', { class: 'form-error', text: describeError(error) })));
  return { element, title: 'Personas' };
}

/** The persona's ACL as one of the three choices the form offers. */
function audienceOf(acl, ownerId) {
  if (!acl || acl['*']?.read) return { kind: 'everyone', users: [] };
  const users = Object.keys(acl).filter((key) => key !== ownerId && !key.startsWith('role:') && key !== '*' && acl[key]?.read);
  return { kind: users.length ? 'some' : 'me', users };
}

export function personaEditView(personaId) {
  const me = api.user;
  const editing = Boolean(personaId);
  const state = { persona: null, avatar: null, avatarPreview: null, allowed: new Map(), mine: true };
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const inputs = {
    name: h('input', { id: 'persona-name', required: true, maxlength: '80' }),
    description: h('textarea', { id: 'persona-description', rows: '2' }),
    systemPrompt: h('textarea', { id: 'persona-system', rows: '6' }),
    greeting: h('textarea', { id: 'persona-greeting', rows: '2' }),
    provider: h('input', { id: 'persona-provider', placeholder: 'the server\u2019s default' }),
    model: h('input', { id: 'persona-model', placeholder: 'the provider\u2019s default' }),
    temperature: h('input', { id: 'persona-temperature', type: 'number', min: '0', max: '2', step: '0.1', placeholder: '0.7' }),
    maxTokens: h('input', { id: 'persona-max-tokens', type: 'number', min: '1', step: '1', placeholder: 'server default' }),
    tools: h('input', { id: 'persona-tools', placeholder: 'none', autocapitalize: 'none', spellcheck: 'false' }),
  };
  const avatarImage = h('span', { class: 'avatar-slot' });
  const avatarInput = h('input', { type: 'file', accept: 'image/*', class: 'visually-hidden', id: 'persona-avatar' });
  const cardInput = h('input', { type: 'file', accept: '.json,.png,application/json,image/png', class: 'visually-hidden', id: 'persona-card' });
  const audience = h('div', { class: 'radio-group', role: 'radiogroup', 'aria-labelledby': 'audience-label' });
  const allowedList = h('ul', { class: 'chips', 'aria-label': 'People who may use it' });
  const allowedInput = h('input', { id: 'persona-allowed', placeholder: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const allowedRow = h('div', { class: 'field', hidden: true },
    h('label', { for: 'persona-allowed', text: 'People who may use it' }), allowedList,
    h('div', { class: 'row' }, allowedInput, h('button', { type: 'button', class: 'button', onclick: () => addAllowed() }, 'Add')));
  const radios = ['everyone', 'me', 'some'].map((kind) => h('input', { type: 'radio', name: 'audience', value: kind, id: `audience-${kind}`, onchange: () => {
    allowedRow.hidden = kind !== 'some';
  } }));
  audience.append(
    h('label', { for: 'audience-everyone' }, radios[0], 'Everyone'),
    h('label', { for: 'audience-me' }, radios[1], 'Only me'),
    h('label', { for: 'audience-some' }, radios[2], 'Me and people I name'),
  );
  radios[0].checked = true;
  const submit = h('button', { type: 'submit', class: 'button primary' }, editing ? 'Save persona' : 'Create persona');

  const showAvatar = () => {
    const name = inputs.name.value || 'Persona';
    avatarImage.replaceChildren(avatar(name, state.avatarPreview ?? fileUrl(state.avatar), 'persona', 'large'));
  };
  inputs.name.addEventListener('input', showAvatar);
  avatarInput.addEventListener('change', () => {
    const file = avatarInput.files?.[0];
    if (!file) return;
    state.avatarFile = file;
    state.avatarPreview = URL.createObjectURL(file);
    showAvatar();
  });
  cardInput.addEventListener('change', async () => {
    const file = cardInput.files?.[0];
    if (!file) return;
    try {
      const card = await importCard(new Uint8Array(await file.arrayBuffer()));
      inputs.name.value = card.name;
      inputs.description.value = card.description;
      inputs.systemPrompt.value = card.systemPrompt;
      inputs.greeting.value = card.greeting;
      if (card.isImage) {
        state.avatarFile = file;
        state.avatarPreview = URL.createObjectURL(file);
      }
      showAvatar();
      error.hidden = true;
      toast(`Imported "${card.name}" (${card.spec.toUpperCase()} card). Review it, then save.`);
      inputs.name.focus();
    } catch (failure) {
      showError(failure instanceof CardError ? failure.message : `This card could not be read: ${failure.message}`);
    } finally {
      cardInput.value = '';
    }
  });

  const renderAllowed = () => {
    allowedList.replaceChildren(...[...state.allowed.values()].map((user) => h('li', { class: 'chip' },
      h('span', { text: displayName(user) }),
      h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${displayName(user)}`, onclick: () => {
        state.allowed.delete(user.objectId);
        renderAllowed();
      } }, icon('close')))));
  };
  async function addAllowed() {
    const name = allowedInput.value.trim().replace(/^@/, '');
    if (!name) return;
    const user = await findUserByName(name).catch(() => null);
    if (!user) return showError(`Nobody is called "${name}".`);
    error.hidden = true;
    state.allowed.set(user.objectId, user);
    allowedInput.value = '';
    renderAllowed();
  }
  allowedInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      addAllowed();
    }
  });

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  const form = h('form', { class: 'form-card', novalidate: true },
    h('div', { class: 'avatar-row' }, avatarImage,
      h('div', { class: 'stack' },
        h('label', { class: 'button', for: 'persona-avatar' }, icon('upload'), 'Choose avatar'), avatarInput,
        h('label', { class: 'button', for: 'persona-card' }, icon('upload'), 'Import Character Card'), cardInput,
        h('p', { class: 'hint', text: 'Cards: V2/V3 JSON, or a PNG with the card inside.' }))),
    field('Name', inputs.name, 'Mention it as @Name in a chat.'),
    field('Description', inputs.description, 'Who it is; the persona is told this too.'),
    field('System prompt', inputs.systemPrompt, 'How it should behave. Only you (its owner) can read it.'),
    field('Greeting', inputs.greeting, 'Posted when it joins a session.'),
    h('div', { class: 'grid-2' }, field('Provider', inputs.provider), field('Model', inputs.model)),
    h('div', { class: 'grid-2' }, field('Temperature', inputs.temperature), field('Max tokens per reply', inputs.maxTokens)),
    field('Tools', inputs.tools, 'Cloud functions it may call while it answers, by name, separated by commas.'),
    h('fieldset', { class: 'field' }, h('legend', { id: 'audience-label', text: 'Who may use it' }), audience),
    allowedRow,
    error,
    h('div', { class: 'row' }, submit, h('a', { class: 'button', href: '#/personas' }, 'Cancel')),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const name = inputs.name.value.trim();
    if (!name) {
      showError('Give the persona a name.');
      inputs.name.focus();
      return;
    }
    const number = (input) => (input.value.trim() === '' ? undefined : Number(input.value));
    const temperature = number(inputs.temperature);
    const maxTokens = number(inputs.maxTokens);
    if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) return showError('Temperature is a number from 0 to 2.');
    if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens > 0)) return showError('Max tokens is a whole number above 0.');
    const tools = inputs.tools.value.split(/[\s,]+/).filter(Boolean);
    const badTool = tools.find((tool) => !/^[A-Za-z0-9_-]{1,64}$/.test(tool));
    if (badTool) return showError(`"${badTool}" is not a tool name: letters, digits, _ and - only.`);
    submit.disabled = true;
    try {
      if (state.avatarFile) {
        state.avatar = await api.upload(state.avatarFile, state.avatarFile.name || 'avatar.png');
        state.avatarFile = null;
      }
      const ownerId = state.persona?.owner?.objectId ?? me.objectId;
      const kind = radios.find((radio) => radio.checked)?.value ?? 'everyone';
      const acl = { [ownerId]: { read: true, write: true } };
      if (kind === 'everyone') acl['*'] = { read: true };
      if (kind === 'some') for (const id of state.allowed.keys()) acl[id] = { read: true };
      const body = {
        name,
        description: inputs.description.value.trim(),
        systemPrompt: inputs.systemPrompt.value,
        greeting: inputs.greeting.value.trim(),
        provider: inputs.provider.value.trim() || { __op: 'Delete' },
        model: inputs.model.value.trim() || { __op: 'Delete' },
        temperature: temperature ?? { __op: 'Delete' },
        maxTokens: maxTokens ?? { __op: 'Delete' },
        tools: tools.length ? [...new Set(tools)] : { __op: 'Delete' },
        ACL: acl,
      };
      if (state.avatar) body.avatar = state.avatar;
      if (!editing) {
        for (const key of Object.keys(body)) if (body[key]?.__op === 'Delete') delete body[key];
      }
      if (editing) {
        await api.update('Persona', personaId, body);
        rememberPersona({ ...state.persona, ...body, objectId: personaId });
        toast('Persona saved.');
      } else {
        const created = await api.create('Persona', body);
        rememberPersona({ ...body, ...created });
        toast(`${name} is ready. Add it to a session.`);
      }
      navigate('/personas');
    } catch (failure) {
      showError(describeError(failure));
    } finally {
      submit.disabled = false;
    }
  });

  const danger = h('div', { class: 'danger-zone', hidden: true });
  const heading = h('h1', { text: editing ? 'Edit persona' : 'New persona' });
  const load = async () => {
    showAvatar();
    if (!editing) return;
    try {
      const persona = await api.get('Persona', personaId);
      state.persona = persona;
      state.avatar = persona.avatar ?? null;
      state.mine = persona.owner?.objectId === me.objectId;
      heading.textContent = persona.name;
      for (const [key, input] of Object.entries(inputs)) input.value = persona[key] ?? '';
      inputs.tools.value = Array.isArray(persona.tools) ? persona.tools.join(', ') : '';
      const { kind, users } = audienceOf(persona.ACL, persona.owner?.objectId);
      radios.find((radio) => radio.value === kind).checked = true;
      allowedRow.hidden = kind !== 'some';
      await loadPeople(users, []);
      for (const id of users) state.allowed.set(id, cachedUser(id) ?? { objectId: id, username: id });
      renderAllowed();
      showAvatar();
      if (!state.mine) {
        for (const control of form.querySelectorAll('input, textarea, button, label.button')) {
          control.setAttribute('disabled', '');
          control.setAttribute('aria-disabled', 'true');
        }
        form.prepend(h('p', { class: 'notice', text: 'Only the persona\u2019s owner can edit it.' }));
      } else {
        danger.hidden = false;
        danger.replaceChildren(h('h2', { text: 'Delete' }), h('button', { type: 'button', class: 'button danger', onclick: async () => {
          if (!(await confirmDialog(`Delete ${persona.name}?`, 'Sessions that use it will no longer get its answers.', 'Delete', true))) return;
          try {
            await api.destroy('Persona', personaId);
            navigate('/personas');
          } catch (failure) {
            toast(describeError(failure), 'error');
          }
        } }, icon('trash'), 'Delete persona'));
      }
    } catch (failure) {
      showError(failure?.code === 101 ? 'This persona does not exist, or you may not use it.' : describeError(failure));
      submit.disabled = true;
    }
  };
  load();
  const element = h('section', { class: 'page' },
    h('header', { class: 'page-header' }, menuButton(), heading),
    h('div', { class: 'page-body narrow' }, form, danger));
  return { element, title: editing ? 'Persona' : 'New persona', focus: () => inputs.name.focus() };
}
