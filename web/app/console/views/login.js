// Sign-in: the master key (kept for this tab only, in sessionStorage) or an admin user's
// username and password. A user without the admin role is refused, and so is its data:
// the server, not this page, decides what each credential may read.

import { h } from '../../dom.js';
import { ApiError, describeError } from '../../errors.js';
import { signInAsAdmin, signInWithMasterKey } from '../session.js';

export function loginView(onSignedIn) {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const show = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  const busy = (form, on) => form.querySelectorAll('button, input').forEach((item) => { item.disabled = on; });

  const keyInput = h('input', { id: 'console-master-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const keyForm = h(
    'form',
    {
      class: 'stack console-login-form',
      onsubmit: async (event) => {
        event.preventDefault();
        error.hidden = true;
        busy(keyForm, true);
        try {
          await signInWithMasterKey(keyInput.value.trim());
          onSignedIn();
        } catch (failure) {
          show(failure instanceof ApiError && failure.code === 0 ? failure.message : describeError(failure, 'Signing in'));
        } finally {
          busy(keyForm, false);
        }
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'console-master-key' }, 'Master key'), keyInput,
      h('p', { class: 'hint' }, 'Kept in this tab only; closing it forgets the key. The server accepts it from the --master-key-ips addresses only.')),
    h('button', { type: 'submit', class: 'button primary wide' }, 'Sign in with the master key'),
  );

  const username = h('input', { id: 'console-username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'console-password', type: 'password', autocomplete: 'current-password', required: true });
  const userForm = h(
    'form',
    {
      class: 'stack console-login-form',
      onsubmit: async (event) => {
        event.preventDefault();
        error.hidden = true;
        busy(userForm, true);
        try {
          await signInAsAdmin(username.value.trim(), password.value);
          onSignedIn();
        } catch (failure) {
          show(failure instanceof ApiError && failure.status === 403 ? failure.message : describeError(failure, 'Logging in'));
        } finally {
          busy(userForm, false);
        }
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'console-username' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'console-password' }, 'Password'), password),
    h('button', { type: 'submit', class: 'button wide' }, 'Log in as an admin'),
  );

  const element = h(
    'section',
    { class: 'console-login' },
    h('div', { class: 'console-login-card' },
      h('h1', {}, 'Parlor console'),
      h('p', { class: 'muted' }, 'Browse and edit data, read the schema, try the API, watch AI usage and live clients.'),
      error,
      h('h2', {}, 'Operator'),
      keyForm,
      h('div', { class: 'or', 'aria-hidden': 'true' }, 'or'),
      h('h2', {}, 'Admin user'),
      h('p', { class: 'hint' }, 'A user whose role is admin sees the schema and what its own rights allow; the operator\u2019s screens need the master key.'),
      userForm,
    ),
  );
  return { element, focus: () => keyInput.focus() };
}
