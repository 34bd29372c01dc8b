// Markdown to a tree of plain data, safe by construction: the parser never produces HTML
// text. Its output is strings (text) and elements `{tag, attrs, children}` whose tags come
// from a fixed list and whose only attributes are a checked `href` and a code language, so
// rendering it with createElement/textContent (`toDom`) cannot run anything a message says.
//
// Covered: paragraphs and line breaks, ATX headings, emphasis (`*`, `_`), strong, strike,
// inline code, fenced and indented code blocks, block quotes, ordered and unordered lists
// (nested by indentation), horizontal rules, tables, links `[text](url)` and bare URLs.

export const ALLOWED_TAGS = new Set([
  'p', 'br', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'em', 'strong', 'del', 'code', 'pre',
  'blockquote', 'ul', 'ol', 'li', 'hr', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
]);

const el = (tag, children = [], attrs = {}) => ({ tag, attrs, children });

/** An `href` a link may carry: http(s) and mailto only; anything else is dropped. */
export function safeHref(url) {
  const trimmed = String(url).trim();
  if (/^(https?:\/\/|mailto:)[^\s]*$/i.test(trimmed)) return trimmed;
  return null;
}

/** Parses `text` into a list of block nodes. */
export function parseMarkdown(text) {
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  return parseBlocks(lines);
}

function isBlank(line) {
  return /^\s*$/.test(line);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

function parseBlocks(lines) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i += 1;
      continue;
    }
    const fence = line.match(FENCE);
    if (fence) {
      const marker = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end of the text)
      const attrs = fence[2] ? { lang: fence[2] } : {};
      blocks.push(el('pre', [el('code', [body.join('\n')], attrs)]));
      continue;
    }
    if (/^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || isBlank(lines[i]))) {
        body.push(lines[i].replace(/^( {4}|\t)/, ''));
        i += 1;
      }
      while (body.length && isBlank(body[body.length - 1])) body.pop();
      blocks.push(el('pre', [el('code', [body.join('\n')])]));
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      blocks.push(el(`h${heading[1].length}`, parseInline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      blocks.push(el('hr'));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const quoted = lines[i].match(QUOTE);
        body.push(quoted ? quoted[1] : lines[i]);
        i += 1;
      }
      blocks.push(el('blockquote', parseBlocks(body)));
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const [list, next] = parseList(lines, i);
      blocks.push(list);
      i = next;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1])) {
      const [table, next] = parseTable(lines, i);
      blocks.push(table);
      i = next;
      continue;
    }
    const body = [];
    while (
      i < lines.length &&
      !isBlank(lines[i]) &&
      !FENCE.test(lines[i]) &&
      !HEADING.test(lines[i]) &&
      !QUOTE.test(lines[i]) &&
      !(body.length && LIST_ITEM.test(lines[i]) && !/^\s*\d/.test(lines[i])) &&
      !RULE.test(lines[i])
    ) {
      body.push(lines[i]);
      i += 1;
    }
    if (!body.length) {
      // A line no rule took (cannot happen with the rules above; kept as text anyway).
      body.push(lines[i]);
      i += 1;
    }
    blocks.push(el('p', paragraph(body)));
  }
  return blocks;
}

/** Lines of a paragraph: inline content with a line break between lines. */
function paragraph(lines) {
  const children = [];
  lines.forEach((line, index) => {
    if (index > 0) children.push(el('br'));
    children.push(...parseInline(line.trim()));
  });
  return children;
}

function parseList(lines, start) {
  const first = lines[start].match(LIST_ITEM);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const items = [];
  let i = start;
  while (i < lines.length) {
    const item = lines[i].match(LIST_ITEM);
    if (!item || item[1].length !== indent || /\d/.test(item[2]) !== ordered) break;
    const body = [item[3]];
    i += 1;
    // Continuation lines and nested lists: indented further than the marker.
    while (i < lines.length) {
      const next = lines[i];
      if (isBlank(next)) {
        const after = lines[i + 1];
        if (after !== undefined && /^\s+/.test(after) && leadingSpaces(after) > indent) {
          body.push('');
          i += 1;
          continue;
        }
        break;
      }
      const nested = next.match(LIST_ITEM);
      if (nested && nested[1].length <= indent) break;
      if (!nested && leadingSpaces(next) <= indent && body.length && !isBlank(body[body.length - 1])) {
        // A lazy continuation of the item's paragraph.
        body.push(next.trim());
        i += 1;
        continue;
      }
      body.push(next.slice(Math.min(leadingSpaces(next), indent + 2)));
      i += 1;
    }
    const blocks = parseBlocks(body);
    // A tight item shows its text without a paragraph around it.
    const children =
      blocks.length >= 1 && blocks[0].tag === 'p' ? [...blocks[0].children, ...blocks.slice(1)] : blocks;
    items.push(el('li', children));
  }
  const attrs = {};
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1) attrs.start = String(number);
  }
  return [el(ordered ? 'ol' : 'ul', items, attrs), i];
}

function leadingSpaces(line) {
  return line.match(/^ */)[0].length;
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

function parseTable(lines, start) {
  const header = splitRow(lines[start]);
  const rows = [];
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) {
    rows.push(splitRow(lines[i]));
    i += 1;
  }
  const head = el('thead', [el('tr', header.map((cell) => el('th', parseInline(cell))))]);
  const body = el(
    'tbody',
    rows.map((row) => el('tr', header.map((_, index) => el('td', parseInline(row[index] ?? ''))))),
  );
  return [el('table', [head, body]), i];
}

const URL_PATTERN = /^(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"\]])/i;

/** Inline markup of one line into text and inline elements. */
export function parseInline(text) {
  const out = [];
  let buffer = '';
  const flush = () => {
    if (buffer) out.push(buffer);
    buffer = '';
  };
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length && /[\\`*_{}[\]()#+\-.!|~>]/.test(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === '`') {
      const ticks = rest.match(/^`+/)[0];
      const close = text.indexOf(ticks, i + ticks.length);
      if (close > 0) {
        flush();
        out.push(el('code', [text.slice(i + ticks.length, close).trim() || ' ']));
        i = close + ticks.length;
        continue;
      }
    }
    if (ch === '[') {
      // The URL may hold one level of balanced parentheses (Wikipedia links).
      const link = rest.match(/^\[([^\]]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+"[^"]*")?\s*\)/);
      if (link) {
        flush();
        const href = safeHref(link[2]);
        const label = parseInline(link[1]);
        if (href) out.push(el('a', label.length ? label : [href], { href }));
        else out.push(...label);
        i += link[0].length;
        continue;
      }
    }
    if ((ch === 'h' || ch === 'H') && /^https?:\/\//i.test(rest) && !/\w$/.test(buffer)) {
      const url = rest.match(URL_PATTERN);
      if (url) {
        flush();
        out.push(el('a', [url[1]], { href: url[1] }));
        i += url[1].length;
        continue;
      }
    }
    const emphasis = matchDelimited(text, i);
    if (emphasis) {
      flush();
      out.push(el(emphasis.tag, parseInline(emphasis.inner)));
      i = emphasis.end;
      continue;
    }
    buffer += ch;
    i += 1;
  }
  flush();
  return out;
}

/** `**strong**`, `__strong__`, `*em*`, `_em_`, `~~del~~` starting at `i`. */
function matchDelimited(text, i) {
  const candidates = [
    ['**', 'strong'],
    ['__', 'strong'],
    ['~~', 'del'],
    ['*', 'em'],
    ['_', 'em'],
  ];
  for (const [marker, tag] of candidates) {
    if (!text.startsWith(marker, i)) continue;
    const after = text[i + marker.length];
    if (after === undefined || /\s/.test(after)) continue;
    // `_` inside a word (snake_case) is not emphasis.
    if (marker[0] === '_' && i > 0 && /\w/.test(text[i - 1])) continue;
    let search = i + marker.length + 1;
    while (search <= text.length) {
      const close = text.indexOf(marker, search);
      if (close < 0) break;
      const before = text[close - 1];
      const following = text[close + marker.length];
      const wordAfter = marker[0] === '_' && following !== undefined && /\w/.test(following);
      // For a single `*`, skip a `**` that belongs to a nested strong.
      const doubled = marker.length === 1 && text[close + 1] === marker;
      if (!/\s/.test(before) && !wordAfter && !doubled) {
        return { tag, inner: text.slice(i + marker.length, close), end: close + marker.length };
      }
      search = close + (doubled ? 2 : 1);
    }
  }
  return null;
}

/** The plain text of a tree (for previews and notifications). */
export function plainText(nodes) {
  return nodes
    .map((node) => (typeof node === 'string' ? node : plainText(node.children)))
    .join('');
}

/**
 * Renders a tree into DOM nodes of `doc`: elements only from ALLOWED_TAGS, text only through
 * text nodes, links opened in a new tab without access to this page.
 */
export function toDom(nodes, doc = document) {
  const fragment = doc.createDocumentFragment();
  for (const node of nodes) {
    if (typeof node === 'string') {
      fragment.append(doc.createTextNode(node));
      continue;
    }
    if (!ALLOWED_TAGS.has(node.tag)) continue;
    const element = doc.createElement(node.tag);
    if (node.tag === 'a') {
      const href = safeHref(node.attrs.href ?? '');
      if (href) {
        element.setAttribute('href', href);
        element.setAttribute('target', '_blank');
        element.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    }
    if (node.tag === 'code' && node.attrs.lang) element.dataset.lang = node.attrs.lang;
    if (node.tag === 'ol' && node.attrs.start && /^\d+$/.test(node.attrs.start)) {
      element.setAttribute('start', node.attrs.start);
    }
    element.append(toDom(node.children, doc));
    fragment.append(element);
  }
  return fragment;
}
