// The profile page: username, display name, email and avatar; a password change (which
// ends the user's other sessions: the server answers with a new token for this one); and
// deleting the account.

import { avatar, confirmDialog, h, icon, toast } from '../dom.js';
import { describeError } from '../errors.js';
import { menuButton } from '../nav.js';
import { api, displayName, live } from '../store.js';
import { fileUrl } from '../api.js';
import { field } from './auth.js';

export function profileView() {
  const me = api.user ?? {};
  const state = { avatarFile: null };
  const username = h('input', { id: 'profile-username', value: me.username ?? '', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const displayNameInput = h('input', { id: 'profile-display-name', value: me.displayName ?? '', maxlength: '80' });
  const email = h('input', { id: 'profile-email', type: 'email', value: me.email ?? '', autocomplete: 'email' });
  const avatarSlot = h('span', { class: 'avatar-slot' });
  const avatarInput = h('input', { type: 'file', accept: 'image/*', class: 'visually-hidden', id: 'profile-avatar' });
  const profileStatus = h('p', { class: 'form-status', role: 'status' });
  const showAvatar = (url) => avatarSlot.replaceChildren(avatar(displayName(api.user), url ?? fileUrl(api.user?.avatar), 'user', 'large'));
  avatarInput.addEventListener('change', () => {
    const file = avatarInput.files?.[0];
    if (!file) return;
    state.avatarFile = file;
    showAvatar(URL.createObjectURL(file));
  });
  const profileForm = h('form', { class: 'form-card', 'aria-labelledby': 'profile-title' },
    h('h2', { id: 'profile-title', text: 'Profile' }),
    h('div', { class: 'avatar-row' }, avatarSlot, h('label', { class: 'button', for: 'profile-avatar' }, icon('upload'), 'Change picture'), avatarInput),
    field('Username', username),
    field('Display name', displayNameInput, 'Shown beside your messages instead of your username.'),
    field('Email', email, 'Only you can see it; used for password resets.'),
    profileStatus,
    h('button', { type: 'submit', class: 'button primary' }, 'Save profile'));
  profileForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    profileStatus.classList.remove('error');
    profileStatus.textContent = 'Saving…';
    try {
      const body = { username: username.value.trim(), displayName: displayNameInput.value.trim() };
      const mail = email.value.trim();
      if (mail) body.email = mail;
      if (state.avatarFile) {
        body.avatar = await api.upload(state.avatarFile, state.avatarFile.name || 'avatar.png');
        state.avatarFile = null;
      }
      await api.update('_User', me.objectId, body);
      await api.refreshMe();
      window.dispatchEvent(new CustomEvent('parlor:me'));
      profileStatus.textContent = 'Saved.';
      showAvatar();
    } catch (error) {
      profileStatus.textContent = describeError(error);
      profileStatus.classList.add('error');
    }
  });

  const password = h('input', { id: 'profile-password', type: 'password', autocomplete: 'new-password', minlength: '6' });
  const again = h('input', { id: 'profile-password-again', type: 'password', autocomplete: 'new-password' });
  const passwordStatus = h('p', { class: 'form-status', role: 'status' });
  const passwordForm = h('form', { class: 'form-card', 'aria-labelledby': 'password-title' },
    h('h2', { id: 'password-title', text: 'Change password' }),
    h('p', { class: 'hint', text: 'This logs you out everywhere else: your other browsers and devices must log in again.' }),
    field('New password', password, 'At least 6 characters.'),
    field('New password again', again),
    passwordStatus,
    h('button', { type: 'submit', class: 'button primary' }, 'Change password'));
  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    passwordStatus.classList.add('error');
    if (password.value.length < 6) {
      passwordStatus.textContent = 'Use at least 6 characters.';
      password.focus();
      return;
    }
    if (password.value !== again.value) {
      passwordStatus.textContent = 'The two passwords differ.';
      again.focus();
      return;
    }
    passwordStatus.textContent = 'Changing…';
    // The live connection speaks with the old token, which the change ends: it reopens
    // with the new one.
    live.suspend();
    try {
      const answer = await api.update('_User', me.objectId, { password: password.value });
      if (answer?.sessionToken) api.remember(answer.sessionToken, api.user);
      await api.refreshMe();
      password.value = '';
      again.value = '';
      passwordStatus.classList.remove('error');
      passwordStatus.textContent = 'Password changed. Your other sessions have ended.';
      toast('Password changed.');
    } catch (error) {
      passwordStatus.textContent = describeError(error);
    } finally {
      if (api.token) live.start();
    }
  });

  const deleteForm = h('div', { class: 'form-card danger-zone', 'aria-labelledby': 'delete-title' },
    h('h2', { id: 'delete-title', text: 'Delete account' }),
    h('p', { class: 'hint', text: 'Your account and log-ins are removed for good. Messages you wrote stay in their sessions.' }),
    h('button', { type: 'button', class: 'button danger', onclick: async () => {
      if (!(await confirmDialog('Delete your account?', `The account "${me.username}" will be removed for good. This cannot be undone.`, 'Delete my account', true))) return;
      try {
        await api.destroy('_User', me.objectId);
        live.stop();
        api.forget();
        toast('Your account was deleted.');
        location.hash = '/signup';
        location.reload();
      } catch (error) {
        toast(describeError(error), 'error');
      }
    } }, icon('trash'), 'Delete my account'));

  showAvatar();
  const element = h('section', { class: 'page' },
    h('header', { class: 'page-header' }, menuButton(), h('h1', { text: 'Your profile' })),
    h('div', { class: 'page-body narrow' }, profileForm, passwordForm, deleteForm));
  return { element, title: 'Profile' };
}
