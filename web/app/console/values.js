// Values in the data browser: how a stored value is shown in a cell, how the text typed into
// a cell or a filter becomes the typed JSON the API expects (by the field's schema type),
// and how filter rows become a `where` object. Anything typed wrong is reported here, before
// a request; whatever passes is still validated by the API, whose refusal is shown as is.

export class InputError extends Error {}

/** Short text for a cell. */
export function formatValue(value, field = {}) {
  if (value === undefined) return '';
  if (value === null) return 'null';
  if (typeof value !== 'object') return String(value);
  switch (value.__type) {
    case 'Date':
      return value.iso;
    case 'Pointer':
      return value.objectId;
    case 'Relation':
      return `Relation<${value.className}>`;
    case 'File':
      return value.name ?? value.url ?? 'file';
    case 'GeoPoint':
      return `${value.latitude}, ${value.longitude}`;
    case 'Bytes':
      return value.base64;
    default:
      return field.type === 'ACL' ? aclSummary(value) : JSON.stringify(value);
  }
}

/** `*: r · u3k…: rw` — who may read or write, briefly. */
export function aclSummary(acl) {
  const entries = Object.entries(acl ?? {});
  if (!entries.length) return 'master key only';
  return entries
    .map(([who, rights]) => `${who}: ${rights.read ? 'r' : ''}${rights.write ? 'w' : ''}`)
    .join(' · ');
}

/** The text an editor starts with for a stored value. */
export function editText(value, field = {}) {
  if (value === undefined || value === null) return '';
  if (field.type === 'Object' || field.type === 'Array' || field.type === 'ACL' || field.type === 'Polygon') {
    return JSON.stringify(value, null, 2);
  }
  return formatValue(value, field);
}

/** Whether the browser lets a cell of this field be edited in place. */
export function editable(name, field = {}) {
  if (['objectId', 'createdAt', 'updatedAt'].includes(name)) return false;
  return !['Relation', 'File', 'Bytes'].includes(field.type);
}

/**
 * The JSON value for `text` typed into a field of this type. An empty text is `undefined`
 * (the caller decides: unset, or leave alone). Throws InputError with a sentence.
 */
export function parseValue(text, field = {}) {
  const trimmed = text.trim();
  if (trimmed === '' && field.type !== 'String') return undefined;
  switch (field.type) {
    case 'String':
      return text;
    case 'Number': {
      const number = Number(trimmed);
      if (!Number.isFinite(number)) throw new InputError(`"${trimmed}" is not a number.`);
      return number;
    }
    case 'Boolean':
      if (/^(true|yes|1)$/i.test(trimmed)) return true;
      if (/^(false|no|0)$/i.test(trimmed)) return false;
      throw new InputError('Type true or false.');
    case 'Date': {
      const date = new Date(trimmed);
      if (Number.isNaN(date.getTime())) throw new InputError(`"${trimmed}" is not a date (e.g. 2026-11-24T10:00:00Z).`);
      return { __type: 'Date', iso: date.toISOString() };
    }
    case 'Pointer':
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(trimmed)) throw new InputError('Type the objectId of the object it points to.');
      return { __type: 'Pointer', className: field.targetClass, objectId: trimmed };
    case 'GeoPoint': {
      const [lat, lng, ...rest] = trimmed.split(',').map((part) => Number(part.trim()));
      if (rest.length || !Number.isFinite(lat) || !Number.isFinite(lng)) throw new InputError('Type latitude, longitude.');
      return { __type: 'GeoPoint', latitude: lat, longitude: lng };
    }
    case 'Object':
    case 'Array':
    case 'ACL':
    case 'Polygon': {
      let parsed;
      try {
        parsed = JSON.parse(trimmed);
      } catch {
        throw new InputError('Not valid JSON.');
      }
      if (field.type === 'Array' && !Array.isArray(parsed)) throw new InputError('Type a JSON array, e.g. ["a", 1].');
      if ((field.type === 'Object' || field.type === 'ACL') && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))) {
        throw new InputError('Type a JSON object, e.g. {"key": "value"}.');
      }
      return parsed;
    }
    default: {
      // A field the schema does not know (yet): JSON when it parses, else text.
      try {
        return JSON.parse(trimmed);
      } catch {
        return text;
      }
    }
  }
}

/** The filter operators offered for a field type: `{op, label, takes}` where `takes` is
 * `value`, `list`, `bool`, `text` (regex) or `none`. */
export function operatorsFor(field = {}) {
  const equality = [
    { op: '$eq', label: 'equals', takes: 'value' },
    { op: '$ne', label: 'does not equal', takes: 'value' },
    { op: '$in', label: 'is one of', takes: 'list' },
    { op: '$nin', label: 'is none of', takes: 'list' },
    { op: '$exists', label: 'exists', takes: 'bool' },
  ];
  const order = [
    { op: '$lt', label: '<', takes: 'value' },
    { op: '$lte', label: '≤', takes: 'value' },
    { op: '$gt', label: '>', takes: 'value' },
    { op: '$gte', label: '≥', takes: 'value' },
  ];
  switch (field.type) {
    case 'String':
      return [...equality, ...order, { op: 'startsWith', label: 'starts with', takes: 'text' }, { op: '$regex', label: 'matches regex', takes: 'text' }];
    case 'Number':
    case 'Date':
      return [...equality, ...order];
    case 'Array':
      return [
        { op: '$eq', label: 'contains', takes: 'element' },
        { op: '$all', label: 'contains all of', takes: 'elements' },
        { op: '$containedBy', label: 'is within', takes: 'elements' },
        { op: '$exists', label: 'exists', takes: 'bool' },
      ];
    case 'Boolean':
    case 'Pointer':
      return equality;
    default:
      return [{ op: '$exists', label: 'exists', takes: 'bool' }];
  }
}

/** `^\Q…\E`: a regex for text that starts with `prefix`, whatever characters it holds. */
export function startsWithRegex(prefix) {
  return `^\\Q${prefix.replaceAll('\\E', '\\E\\\\E\\Q')}\\E`;
}

/** A list typed as `a, b, c` (or a JSON array) parsed item by item for the field's type. */
function parseList(text, field) {
  const trimmed = text.trim();
  let items;
  if (trimmed.startsWith('[')) {
    try {
      items = JSON.parse(trimmed);
    } catch {
      throw new InputError('Not a valid JSON list.');
    }
    if (!Array.isArray(items)) throw new InputError('Type a list: a, b, c.');
    return items;
  }
  items = trimmed.split(',').map((item) => item.trim()).filter(Boolean);
  if (!items.length) throw new InputError('Type at least one value.');
  return items.map((item) => parseValue(item, field));
}

/** An Array field's element typed as text: JSON when it parses, else the text. */
function parseElement(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The `where` of filter rows `{field, op, value}` over a class's fields; rows on the same
 * field are combined (`{score: {$gt: 1, $lt: 5}}`). Throws InputError naming the row.
 */
export function buildWhere(rows, fields) {
  const where = {};
  for (const row of rows) {
    if (!row.field) continue;
    const field = fields[row.field] ?? {};
    const kind = operatorsFor(field).find((item) => item.op === row.op)?.takes ?? 'value';
    let op = row.op;
    let value;
    try {
      switch (kind) {
        case 'bool':
          value = row.value !== 'false' && row.value !== false;
          break;
        case 'list':
          value = parseList(row.value ?? '', field);
          break;
        case 'elements':
          value = parseList(row.value ?? '', { type: undefined });
          break;
        case 'element':
          value = parseElement(row.value ?? '');
          break;
        case 'text':
          value = row.op === 'startsWith' ? startsWithRegex(row.value ?? '') : row.value ?? '';
          op = '$regex';
          break;
        default:
          value = parseValue(row.value ?? '', field);
          if (value === undefined) value = null;
      }
    } catch (error) {
      if (error instanceof InputError) throw new InputError(`${row.field}: ${error.message}`);
      throw error;
    }
    const existing = where[row.field];
    if (op === '$eq' && existing === undefined) {
      where[row.field] = value;
    } else {
      const constraints = existing === undefined ? {} : isConstraint(existing) ? existing : { $eq: existing };
      constraints[op] = value;
      where[row.field] = constraints;
    }
  }
  return where;
}

function isConstraint(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !value.__type && Object.keys(value).some((key) => key.startsWith('$'));
}
