// Log in and sign up: one form, two modes, with the API's refusals in plain words.

import { h, icon } from '../dom.js';
import { describeError } from '../errors.js';
import { api, developerLinks } from '../store.js';

export function authView(mode, onDone) {
  const signup = mode === 'signup';
  const error = h('p', { class: 'form-error', role: 'alert', id: 'auth-error', hidden: true });
  const username = h('input', {
    id: 'auth-username', name: 'username', autocomplete: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false', 'aria-describedby': 'auth-error',
  });
  const email = h('input', { id: 'auth-email', name: 'email', type: 'email', autocomplete: 'email' });
  const password = h('input', {
    id: 'auth-password', name: 'password', type: 'password', required: true,
    autocomplete: signup ? 'new-password' : 'current-password', minlength: signup ? '6' : null,
  });
  const submit = h('button', { type: 'submit', class: 'button primary wide' }, signup ? 'Create account' : 'Log in');
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('bot')), 'Parlor'),
    h('h1', { id: 'auth-title', text: signup ? 'Create your account' : 'Welcome back' }),
    h('p', { class: 'muted', text: signup ? 'Chat with people and AI personas, live.' : 'Log in to your chats.' }),
    field('Username', username),
    signup ? field('Email (optional, for password resets)', email) : null,
    field('Password', password, signup ? 'At least 6 characters.' : null),
    error,
    submit,
    h(
      'p',
      { class: 'switch' },
      signup ? 'Already have an account? ' : 'New here? ',
      h('a', { href: signup ? '#/login' : '#/signup' }, signup ? 'Log in' : 'Create an account'),
    ),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const name = username.value.trim();
    if (!name) return show('Enter a username.', username);
    if (!password.value) return show('Enter a password.', password);
    if (signup && password.value.length < 6) return show('Use at least 6 characters for the password.', password);
    submit.disabled = true;
    submit.textContent = signup ? 'Creating…' : 'Logging in…';
    try {
      if (signup) await api.signUp({ username: name, password: password.value, email: email.value.trim() });
      else await api.logIn(name, password.value);
      onDone();
    } catch (failure) {
      show(describeError(failure), failure?.code === 202 || failure?.code === 125 || failure?.code === 203 ? (failure.code === 202 ? username : email) : password);
    } finally {
      submit.disabled = false;
      submit.textContent = signup ? 'Create account' : 'Log in';
    }
  });

  function show(message, focus) {
    error.textContent = message;
    error.hidden = false;
    focus?.setAttribute('aria-invalid', 'true');
    focus?.focus();
  }

  // For developers trying the API: the same server answers REST and GraphQL.
  const tools = h(
    'nav',
    { class: 'developer-links', 'aria-label': 'Developer tools' },
    'For developers: ',
    ...developerLinks.flatMap((link, index) => [index ? ' · ' : null, h('a', { href: link.href }, link.label)]),
  );
  form.append(tools);
  const element = h('div', { class: 'auth-page' }, form);
  return { element, focus: () => username.focus() };
}

export function field(label, input, hint) {
  const id = input.id || `field-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), hintId].filter(Boolean).join(' '));
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('p', { class: 'hint', id: hintId, text: hint }) : null,
  );
}
