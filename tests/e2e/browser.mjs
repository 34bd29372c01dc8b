// Browser helpers for the web app's end-to-end tests: Debian's chromium driven by
// playwright-core (no browser download), a fresh profile per launch, screenshots under
// <repo>/target/e2e-screenshots (CI keeps them), and an audit that every control on the
// page has an accessible name.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const SCREENSHOTS = path.join(REPO_ROOT, 'target', 'e2e-screenshots');

export const CHROMIUM = process.env.PARLOR_CHROMIUM || '/usr/bin/chromium';

/**
 * Launches headless chromium. Playwright gives each launch a new empty profile folder
 * (its own `--user-data-dir`, removed at close); tests make one context per person.
 */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Saves a screenshot `<name>.png` of `page` (whole viewport). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/**
 * The visible controls of the page that have no accessible name (buttons, links, form
 * fields, comboboxes, options): a short description of each, for an assertion message.
 */
export async function unnamedControls(page) {
  return page.evaluate(() => {
    const visible = (element) => {
      const style = getComputedStyle(element);
      const box = element.getBoundingClientRect();
      return style.visibility !== 'hidden' && style.display !== 'none' && (box.width > 0 || box.height > 0);
    };
    const nameOf = (element) => {
      const labelledBy = element.getAttribute('aria-labelledby');
      if (labelledBy) {
        const text = labelledBy.split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? '').join(' ').trim();
        if (text) return text;
      }
      const label = element.getAttribute('aria-label');
      if (label?.trim()) return label;
      if (element.labels?.length) {
        const text = [...element.labels].map((item) => item.textContent).join(' ').trim();
        if (text) return text;
      }
      if (element.closest('label')?.textContent.trim()) return element.closest('label').textContent.trim();
      if (['BUTTON', 'A'].includes(element.tagName) || element.getAttribute('role') === 'option') {
        const text = element.textContent.trim();
        if (text) return text;
        const alt = element.querySelector('img[alt]')?.getAttribute('alt');
        if (alt) return alt;
      }
      return element.getAttribute('title')?.trim() || '';
    };
    const selector = 'button, a[href], input:not([type="hidden"]), select, textarea, [role="combobox"], [role="option"], [role="button"]';
    return [...document.querySelectorAll(selector)]
      .filter((element) => visible(element) || element.classList.contains('visually-hidden'))
      .filter((element) => !nameOf(element))
      .map((element) => element.outerHTML.slice(0, 160));
  });
}
