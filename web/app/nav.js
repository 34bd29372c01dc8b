// Navigation shared by every view: hash routes, and the button that opens the session list
// on narrow screens (the shell registers what opening it does).

import { iconButton } from './dom.js';

let openSidebar = () => {};

export function onOpenSidebar(callback) {
  openSidebar = callback;
}

/** Goes to `#path` (renders again when already there). */
export function navigate(path) {
  if (location.hash !== `#${path}`) location.hash = path;
  else window.dispatchEvent(new HashChangeEvent('hashchange'));
}

/** The button that opens the session list on narrow screens (each page header has one). */
export function menuButton() {
  return iconButton('menu', 'Open the session list', () => openSidebar(), { class: 'menu-button' });
}
