// Small DOM helpers: `h()` builds elements from a tag, properties and children (text is
// always set as text, never parsed as HTML), `icon()` draws the app's line icons, and a
// toast and a confirmation dialog that every view shares.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * `h('button', {class: 'x', onclick, 'aria-label': 'Send'}, 'text', child…)`. Properties
 * starting with `on` are listeners; `class`, `text`, `value`, `checked`, `disabled`,
 * `hidden` and `dataset` are set as properties; everything else is an attribute.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      element.className = value;
    } else if (key === 'text') {
      element.textContent = value;
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple', 'required', 'autofocus'].includes(key)) {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

const ICONS = {
  send: 'M4 12l16-8-6 16-2.5-6.5L4 12z',
  stop: 'M7 7h10v10H7z',
  regenerate: 'M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7',
  left: 'M15 5l-7 7 7 7',
  right: 'M9 5l7 7-7 7',
  menu: 'M4 7h16M4 12h16M4 17h16',
  plus: 'M12 5v14M5 12h14',
  search: 'M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14zm5-2l4 4',
  close: 'M6 6l12 12M18 6L6 18',
  user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 8a7 7 0 0 1 14 0',
  users: 'M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zM3 20a6 6 0 0 1 12 0M16 4.5a3.5 3.5 0 0 1 0 6.5M18 14a6 6 0 0 1 3 6',
  bot: 'M6 9h12v10H6zM12 5v4M9 13h.01M15 13h.01M9 16h6M3 13v3M21 13v3',
  sun: 'M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z',
  copy: 'M9 9h10v10H9zM5 15V5h10',
  archive: 'M4 5h16v4H4zM6 9v10h12V9M10 13h4',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
  trash: 'M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13',
  edit: 'M4 20h4L19 9l-4-4L4 16v4z',
  context: 'M5 4h10l4 4v12H5zM14 4v5h5M8 13h8M8 17h5',
  upload: 'M12 16V4M7 9l5-5 5 5M5 20h14',
  leave: 'M14 4H6v16h8M17 8l4 4-4 4M21 12H10',
  check: 'M5 12l5 5 9-10',
  alert: 'M12 4l9 16H3zM12 10v4M12 17h.01',
  down: 'M12 5v14M6 13l6 6 6-6',
};

/** An inline SVG line icon, hidden from assistive technology (its button has the name). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name] ?? '');
  svg.append(path);
  return svg;
}

/** An icon button: the label is its accessible name and its tooltip. */
export function iconButton(name, label, onclick, props = {}) {
  return h('button', { type: 'button', class: `icon-button ${props.class ?? ''}`, 'aria-label': label, title: label, onclick, ...props, }, icon(name));
}

let toastRegion = null;

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = 'info') {
  if (!toastRegion) {
    toastRegion = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastRegion);
  }
  const item = h('div', { class: `toast toast-${kind}` }, message);
  toastRegion.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 7000 : 4000);
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'confirm-title' });
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h('h2', { id: 'confirm-title', text: title }),
      h('p', { text }),
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'button', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: `button ${danger ? 'danger' : 'primary'}`, onclick: () => done(true) }, confirmLabel),
      ),
    );
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Initials for an avatar placeholder. */
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] ?? '?').slice(0, 2);
  return letters.toUpperCase();
}

/** A stable hue for a name, so each author keeps a colour. */
export function hueOf(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** An avatar: the image when there is one, else initials on a colour of the name. */
export function avatar(name, url, kind = 'user', size = '') {
  const element = h('span', { class: `avatar avatar-${kind} ${size}`, 'aria-hidden': 'true' });
  element.style.setProperty('--hue', String(hueOf(name)));
  if (url) element.append(h('img', { src: url, alt: '' }));
  else element.append(initials(name));
  return element;
}

/** "14:05", or the date too when not today. */
export function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const today = new Date();
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === today.toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${time}`;
}
