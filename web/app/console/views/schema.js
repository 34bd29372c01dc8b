// The schema: the ER diagram of the live schema, drawn here as SVG from `/schemas` (no
// library, no CDN), the data dictionary, the JSON export and the Mermaid source: the same
// content `parlor schema --format json|mermaid|markdown` prints.

import { h, icon, toast } from '../../dom.js';
import { describeError } from '../../errors.js';
import { HEADER, layout } from '../er.js';
import { dictionaryRows, jsonExport, markdown, mermaid, sortedClasses } from '../schema-doc.js';
import { api } from '../session.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The diagram as an SVG element: boxes, rows, connectors with crow's-foot ends. */
export function diagram(schemas) {
  const model = layout(schemas);
  const root = svg('svg', {
    viewBox: `0 0 ${model.width} ${model.height}`,
    width: model.width,
    height: model.height,
    class: 'er-diagram',
    role: 'img',
    'aria-label': `Entity-relationship diagram of ${model.nodes.length} classes`,
  });
  root.append(svg('title', {}, `Entity-relationship diagram: ${model.nodes.map((node) => node.name).join(', ')}`));
  const defs = svg('defs');
  // "many" at the pointing side, "one" (a bar) at the target: the object that points is one
  // of many pointing at the same target.
  const one = svg('marker', { id: 'er-one', viewBox: '0 0 12 12', refX: 11, refY: 6, markerWidth: 12, markerHeight: 12, orient: 'auto-start-reverse' });
  one.append(svg('path', { d: 'M 8 1 L 8 11 M 0 6 L 12 6', class: 'er-marker' }));
  const many = svg('marker', { id: 'er-many', viewBox: '0 0 12 12', refX: 1, refY: 6, markerWidth: 12, markerHeight: 12, orient: 'auto-start-reverse' });
  many.append(svg('path', { d: 'M 0 1 L 10 6 L 0 11 M 0 6 L 12 6', class: 'er-marker' }));
  defs.append(one, many);
  root.append(defs);
  const edges = svg('g', { class: 'er-edges' });
  for (const edge of model.edges) {
    const path = svg('path', {
      d: edge.path,
      class: `er-edge ${edge.kind === 'Relation' ? 'relation' : ''} ${edge.required ? 'required' : ''}`,
      'marker-start': 'url(#er-many)',
      'marker-end': edge.kind === 'Relation' ? 'url(#er-many)' : 'url(#er-one)',
      'data-from': edge.from,
      'data-to': edge.to,
    });
    path.append(svg('title', {}, `${edge.from}.${edge.field} → ${edge.to} (${edge.kind}${edge.required ? ', required' : ''})`));
    edges.append(path);
  }
  const nodes = svg('g', { class: 'er-nodes' });
  for (const node of model.nodes) {
    const group = svg('g', { class: 'er-node', 'data-class': node.name });
    const link = svg('a', { href: `#/data/${encodeURIComponent(node.name)}`, 'aria-label': `${node.name}: browse its rows` });
    link.append(
      svg('rect', { x: node.x, y: node.y, width: node.width, height: node.height, rx: 8, class: 'er-box' }),
      svg('rect', { x: node.x, y: node.y, width: node.width, height: HEADER, rx: 8, class: 'er-header' }),
      svg('rect', { x: node.x, y: node.y + HEADER - 8, width: node.width, height: 8, class: 'er-header' }),
      svg('text', { x: node.x + 12, y: node.y + 20, class: 'er-title' }, node.name),
    );
    group.append(link);
    for (const field of node.fields) {
      group.append(
        svg('text', { x: node.x + 12, y: field.y + 4, class: `er-field ${field.required ? 'required' : ''}` }, `${field.name}${field.required ? ' *' : ''}`),
        svg('text', { x: node.x + node.width - 12, y: field.y + 4, class: 'er-type', 'text-anchor': 'end' }, `${field.key ? `${field.key} ` : ''}${field.target ? `→ ${field.target}` : field.type}`),
      );
    }
    nodes.append(group);
  }
  root.append(edges, nodes);
  return root;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied.`);
  } catch {
    toast('The browser did not allow copying; select the text instead.', 'error');
  }
}

function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function schemaView() {
  const panel = h('div', { class: 'schema-panel' }, h('p', { class: 'muted', role: 'status' }, 'Loading the schema…'));
  const tabs = [
    { id: 'diagram', label: 'ER diagram' },
    { id: 'dictionary', label: 'Data dictionary' },
    { id: 'json', label: 'JSON schema' },
    { id: 'mermaid', label: 'Mermaid' },
  ];
  let active = 'diagram';
  let schemas = [];
  let descriptions = {};
  const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Schema views' });
  const element = h('section', { class: 'console-page schema-page' },
    h('header', { class: 'console-header' }, h('h1', {}, 'Schema'), h('p', { class: 'muted' }, 'The live schema, as `parlor schema` prints it.')),
    tabList,
    panel);

  function drawTabs() {
    tabList.replaceChildren(...tabs.map((tab) => h('button', {
      type: 'button',
      role: 'tab',
      id: `tab-${tab.id}`,
      'aria-selected': tab.id === active ? 'true' : 'false',
      'aria-controls': 'schema-tabpanel',
      class: 'tab',
      onclick: () => { active = tab.id; drawTabs(); draw(); },
    }, tab.label)));
  }

  function draw() {
    panel.setAttribute('role', 'tabpanel');
    panel.id = 'schema-tabpanel';
    panel.setAttribute('aria-labelledby', `tab-${active}`);
    if (active === 'diagram') {
      panel.replaceChildren(
        h('p', { class: 'hint' }, 'A box per class; a line per pointer (a bar at the class pointed to) or relation (forks at both ends). * marks a required field. Click a class to browse its rows.'),
        h('div', { class: 'er-holder' }, diagram(schemas)),
      );
    } else if (active === 'dictionary') {
      panel.replaceChildren(...sortedClasses(schemas).map((schema) => h('section', { class: 'dictionary-class' },
        h('h2', { id: `dict-${schema.className}` }, schema.className),
        h('div', { class: 'table-holder' }, h('table', { class: 'dictionary', 'aria-labelledby': `dict-${schema.className}` },
          h('thead', {}, h('tr', {}, ['Field', 'Type', 'Required', 'Default', 'Description'].map((title) => h('th', { scope: 'col' }, title)))),
          h('tbody', {}, dictionaryRows(schema, descriptions).map((row) => h('tr', {},
            h('th', { scope: 'row' }, h('code', {}, row.name)),
            h('td', {}, row.type),
            h('td', {}, row.required ? 'yes' : ''),
            h('td', {}, row.defaultValue ? h('code', {}, row.defaultValue) : ''),
            h('td', {}, row.description)))))),
        h('p', { class: 'hint' }, 'Class-level permissions: ', h('code', {}, JSON.stringify(schema.classLevelPermissions ?? {}))))));
      panel.prepend(h('div', { class: 'row' },
        h('button', { type: 'button', class: 'button', onclick: () => copy(markdown(schemas, descriptions), 'The dictionary (Markdown)') }, icon('copy'), 'Copy as Markdown'),
        h('button', { type: 'button', class: 'button', onclick: () => download(markdown(schemas, descriptions), 'data-dictionary.md', 'text/markdown') }, icon('down'), 'Download .md')));
    } else {
      const text = active === 'json' ? jsonExport(schemas) : mermaid(schemas);
      const name = active === 'json' ? 'schema.json' : 'schema.mmd';
      panel.replaceChildren(
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'button', onclick: () => copy(text, active === 'json' ? 'The JSON schema' : 'The Mermaid source') }, icon('copy'), 'Copy'),
          h('button', { type: 'button', class: 'button', onclick: () => download(text, name, active === 'json' ? 'application/json' : 'text/plain') }, icon('down'), `Download ${name}`)),
        h('pre', { class: 'code-block', tabindex: '0', 'aria-label': active === 'json' ? 'JSON schema' : 'Mermaid source', 'data-format': active }, text),
      );
    }
  }

  (async () => {
    try {
      const [answer, dictionary] = await Promise.all([
        api.request('GET', '/schemas'),
        fetch(new URL('../../descriptions.json', import.meta.url)).then((response) => (response.ok ? response.json() : {})).catch(() => ({})),
      ]);
      schemas = answer.results ?? [];
      descriptions = dictionary;
      drawTabs();
      draw();
    } catch (error) {
      panel.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, `The schema could not be read: ${error.status === 403 ? 'this needs the master key or an admin user.' : describeError(error)}`));
    }
  })();

  return { element, title: 'Schema' };
}
