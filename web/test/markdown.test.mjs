// Markdown rendering: what it shows, and that nothing a message says can become markup
// that runs (tags outside the allowed list, attributes, javascript: links).
import test from 'node:test';
import assert from 'node:assert/strict';
import { ALLOWED_TAGS, parseMarkdown, parseInline, plainText, safeHref, toDom } from '../app/markdown.js';

/** Every element of a tree, depth first. */
function elements(nodes, out = []) {
  for (const node of nodes) {
    if (typeof node === 'string') continue;
    out.push(node);
    elements(node.children, out);
  }
  return out;
}

/** A tiny stand-in for `document`, recording what `toDom` builds. */
function fakeDocument() {
  const make = (kind, props) => ({
    kind, children: [], attributes: {}, dataset: {}, ...props,
    append(...items) {
      for (const item of items) {
        if (item.kind === 'fragment') this.children.push(...item.children);
        else this.children.push(item);
      }
    },
    setAttribute(name, value) {
      this.attributes[name] = value;
    },
  });
  return {
    createDocumentFragment: () => make('fragment'),
    createElement: (tag) => make('element', { tag }),
    createTextNode: (text) => make('text', { text }),
  };
}

test('HTML and script in a message stay text', () => {
  const payloads = [
    '<script>alert(1)</script>',
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    '"><svg onload=alert(1)>',
    '<style>body{display:none}</style>',
  ];
  for (const payload of payloads) {
    const tree = parseMarkdown(`before ${payload} after`);
    for (const element of elements(tree)) {
      assert.ok(ALLOWED_TAGS.has(element.tag), `unexpected tag ${element.tag}`);
      assert.deepEqual(Object.keys(element.attrs).filter((key) => key !== 'href' && key !== 'lang' && key !== 'start'), []);
    }
    assert.equal(plainText(tree), `before ${payload} after`);
  }
});

test('only http(s) and mailto links become links', () => {
  assert.equal(safeHref('https://example.com/a?b=c'), 'https://example.com/a?b=c');
  assert.equal(safeHref('mailto:a@example.com'), 'mailto:a@example.com');
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref(' JaVaScRiPt:alert(1)'), null);
  assert.equal(safeHref('data:text/html,<script>alert(1)</script>'), null);
  assert.equal(safeHref('vbscript:x'), null);
  const [paragraph] = parseMarkdown('[click](javascript:alert(1)) and [site](https://example.com)');
  const links = elements([paragraph]).filter((node) => node.tag === 'a');
  assert.equal(links.length, 1);
  assert.equal(links[0].attrs.href, 'https://example.com');
  assert.equal(plainText([paragraph]), 'click and site');
});

test('bare URLs are linked without trailing punctuation', () => {
  const nodes = parseInline('see https://example.com/x.');
  assert.deepEqual(nodes, ['see ', { tag: 'a', attrs: { href: 'https://example.com/x' }, children: ['https://example.com/x'] }, '.']);
});

test('code blocks keep their text verbatim, with the language', () => {
  const [block] = parseMarkdown('```html\n<b>not bold</b>\n  indented\n```');
  assert.equal(block.tag, 'pre');
  assert.deepEqual(block.children[0], { tag: 'code', attrs: { lang: 'html' }, children: ['<b>not bold</b>\n  indented'] });
  const [unclosed] = parseMarkdown('```\nstill streaming');
  assert.equal(plainText([unclosed]), 'still streaming');
});

test('emphasis, strong, strike, inline code and snake_case', () => {
  assert.deepEqual(parseInline('**bold** and *em* and ~~gone~~ and `x*y*`'), [
    { tag: 'strong', attrs: {}, children: ['bold'] },
    ' and ',
    { tag: 'em', attrs: {}, children: ['em'] },
    ' and ',
    { tag: 'del', attrs: {}, children: ['gone'] },
    ' and ',
    { tag: 'code', attrs: {}, children: ['x*y*'] },
  ]);
  assert.deepEqual(parseInline('a_snake_case_name'), ['a_snake_case_name']);
  assert.deepEqual(parseInline('2 * 3 * 4'), ['2 * 3 * 4']);
});

test('headings, lists, quotes, rules and tables', () => {
  const tree = parseMarkdown('# Title\n\n- one\n- two\n  - nested\n\n3. three\n4. four\n\n> quoted\n\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |');
  assert.deepEqual(tree.map((node) => node.tag), ['h1', 'ul', 'ol', 'blockquote', 'hr', 'table']);
  assert.equal(tree[1].children.length, 2);
  assert.equal(tree[1].children[1].children.at(-1).tag, 'ul');
  assert.equal(tree[2].attrs.start, '3');
  assert.equal(plainText([tree[5]]), 'ab12');
});

test('paragraph lines keep their breaks', () => {
  const [paragraph] = parseMarkdown('line one\nline two');
  assert.deepEqual(paragraph.children, ['line one', { tag: 'br', attrs: {}, children: [] }, 'line two']);
});

test('toDom builds only allowed elements, text as text, links that cannot reach the page', () => {
  const doc = fakeDocument();
  const tree = [
    { tag: 'p', attrs: { onclick: 'alert(1)' }, children: ['<b>x</b>'] },
    { tag: 'script', attrs: {}, children: ['alert(1)'] },
    { tag: 'a', attrs: { href: 'javascript:alert(1)' }, children: ['bad'] },
    { tag: 'a', attrs: { href: 'https://example.com' }, children: ['good'] },
  ];
  const fragment = toDom(tree, doc);
  assert.deepEqual(fragment.children.map((node) => node.tag), ['p', 'a', 'a']);
  assert.deepEqual(fragment.children[0].attributes, {});
  assert.equal(fragment.children[0].children[0].kind, 'text');
  assert.equal(fragment.children[0].children[0].text, '<b>x</b>');
  assert.deepEqual(fragment.children[1].attributes, {});
  assert.deepEqual(fragment.children[2].attributes, { href: 'https://example.com', target: '_blank', rel: 'noopener noreferrer nofollow' });
});
