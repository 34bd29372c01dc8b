// The ER diagram's layout, computed from `/schemas` without any library: a box per class
// (its fields listed, keys first), laid out in columns, and a connector per pointer or
// relation from the field's row to the class it points at. The Schema view draws this
// model as SVG; keeping the geometry here makes it testable without a browser.

import { fieldNames, sortedClasses } from './schema-doc.js';

export const BOX_WIDTH = 230;
export const HEADER = 30;
export const ROW = 19;
export const GAP_X = 90;
export const GAP_Y = 34;
const PAD = 20;

/** The fields a box lists: objectId first, then pointers and relations, then the rest. */
function orderedFields(schema) {
  const names = fieldNames(schema.fields);
  const rank = (name) => {
    const type = schema.fields[name].type;
    if (name === 'objectId') return 0;
    if (type === 'Pointer' || type === 'Relation') return 1;
    return 2;
  };
  return names
    .map((name, index) => ({ name, index }))
    .sort((a, b) => rank(a.name) - rank(b.name) || a.index - b.index)
    .map(({ name }) => {
      const field = schema.fields[name];
      return {
        name,
        type: field.type,
        target: field.targetClass ?? null,
        required: Boolean(field.required),
        key: name === 'objectId' ? 'PK' : field.type === 'Pointer' ? 'FK' : '',
      };
    });
}

/**
 * The diagram's model: `{width, height, nodes, edges}`. A node: `{name, x, y, width, height,
 * fields: [{name, type, target, required, key, y}]}` (field `y` is the row's centre). An
 * edge: `{from, to, field, kind: 'Pointer'|'Relation', required, path}` with an SVG path
 * from the field's row to the side of the target's header.
 */
export function layout(schemas, { columns } = {}) {
  const classes = sortedClasses(schemas);
  const byName = new Map(classes.map((schema) => [schema.className, schema]));
  // Classes with more connections go first, so the busy ones sit near the middle columns.
  const degree = new Map(classes.map((schema) => [schema.className, 0]));
  for (const schema of classes) {
    for (const name of fieldNames(schema.fields)) {
      const target = schema.fields[name].targetClass;
      if (target && byName.has(target)) {
        degree.set(schema.className, degree.get(schema.className) + 1);
        degree.set(target, degree.get(target) + 1);
      }
    }
  }
  const count = Math.max(1, columns ?? Math.min(4, Math.ceil(Math.sqrt(classes.length))));
  const order = [...classes].sort((a, b) => degree.get(b.className) - degree.get(a.className));
  const heights = new Array(count).fill(PAD);
  const nodes = new Map();
  // Fill the columns from the middle outwards, each box into the shortest column.
  const columnOrder = [...Array(count).keys()].sort((a, b) => Math.abs(a - (count - 1) / 2) - Math.abs(b - (count - 1) / 2));
  for (const schema of order) {
    const column = columnOrder.reduce((best, index) => (heights[index] < heights[best] ? index : best), columnOrder[0]);
    const fields = orderedFields(schema);
    const height = HEADER + fields.length * ROW + 8;
    const x = PAD + column * (BOX_WIDTH + GAP_X);
    const y = heights[column];
    fields.forEach((field, index) => {
      field.y = y + HEADER + index * ROW + ROW / 2 + 2;
    });
    nodes.set(schema.className, { name: schema.className, x, y, width: BOX_WIDTH, height, column, fields });
    heights[column] = y + height + GAP_Y;
  }
  const edges = [];
  for (const node of nodes.values()) {
    for (const field of node.fields) {
      const target = field.target && nodes.get(field.target);
      if (!target) continue;
      edges.push({
        from: node.name,
        to: target.name,
        field: field.name,
        kind: field.type,
        required: field.required,
        path: connector(node, field, target),
      });
    }
  }
  return {
    width: PAD * 2 + count * BOX_WIDTH + (count - 1) * GAP_X,
    height: Math.max(...heights) - GAP_Y + PAD,
    nodes: [...nodes.values()],
    edges,
  };
}

/** A curve from a field's row to the target's header, leaving and entering by the sides
 * that face each other (a loop on the right side for a class pointing at itself). */
function connector(node, field, target) {
  const startY = field.y;
  const endY = target.y + HEADER / 2;
  if (target === node) {
    const x = node.x + node.width;
    return `M ${x} ${startY} C ${x + 40} ${startY}, ${x + 40} ${endY}, ${x} ${endY}`;
  }
  const rightward = target.x > node.x;
  if (target.column === node.column) {
    const x = node.x;
    const bend = x - 36 - Math.min(40, Math.abs(endY - startY) / 12);
    return `M ${x} ${startY} C ${bend} ${startY}, ${bend} ${endY}, ${x} ${endY}`;
  }
  const startX = rightward ? node.x + node.width : node.x;
  const endX = rightward ? target.x : target.x + target.width;
  const middle = (startX + endX) / 2;
  return `M ${startX} ${startY} C ${middle} ${startY}, ${middle} ${endY}, ${endX} ${endY}`;
}
