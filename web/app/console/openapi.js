// Reading `/openapi.json` for the playground: its operations in order, grouped by tag (a
// class, or Users, Functions, …), and an example body written from an operation's request
// schema (the required fields, with a placeholder of each one's type).

const METHODS = ['get', 'post', 'put', 'delete'];

/** Every operation: `{id, tag, method, path, summary, parameters, requestBody}`. */
export function operationsOf(document) {
  const operations = [];
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const parameters = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map((parameter) => resolve(document, parameter));
      operations.push({
        id: `${method.toUpperCase()} ${path}`,
        tag: operation.tags?.[0] ?? 'Other',
        method: method.toUpperCase(),
        path,
        summary: operation.summary ?? '',
        parameters,
        requestBody: operation.requestBody?.content?.['application/json']?.schema ?? null,
      });
    }
  }
  return operations;
}

/** Follows a `$ref` within the document. */
export function resolve(document, schema) {
  let current = schema;
  for (let depth = 0; current?.$ref && depth < 20; depth += 1) {
    const parts = current.$ref.replace(/^#\//, '').split('/');
    current = parts.reduce((node, part) => node?.[part], document);
  }
  return current ?? {};
}

/** A schema with its `$ref` and `allOf` folded into one object schema. */
function flatten(document, schema, depth = 0) {
  const resolved = resolve(document, schema);
  if (!resolved.allOf || depth > 10) return resolved;
  const merged = { ...resolved, properties: { ...(resolved.properties ?? {}) }, required: [...(resolved.required ?? [])] };
  delete merged.allOf;
  for (const part of resolved.allOf) {
    const flat = flatten(document, part, depth + 1);
    merged.type ??= flat.type;
    for (const [name, value] of Object.entries(flat.properties ?? {})) {
      merged.properties[name] = name in merged.properties ? { ...value, ...merged.properties[name] } : value;
    }
    if (!('required' in (resolved ?? {})) || resolved.required?.length) merged.required.push(...(flat.required ?? []));
  }
  if (Array.isArray(resolved.required) && resolved.required.length === 0) merged.required = [];
  return merged;
}

/** A placeholder value for a schema. */
function example(document, schema, depth = 0) {
  const flat = flatten(document, schema);
  if (flat.default !== undefined) return flat.default;
  if (flat.const !== undefined) return flat.const;
  if (flat.enum?.length) return flat.enum[0];
  const properties = flat.properties ?? {};
  if (properties.__type) {
    const type = flatten(document, properties.__type).const;
    if (type === 'Pointer') return { __type: 'Pointer', className: flatten(document, properties.className ?? {}).const ?? '', objectId: '' };
    if (type === 'Date') return { __type: 'Date', iso: new Date().toISOString() };
  }
  switch (flat.type) {
    case 'string':
      return '';
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object':
      return depth > 3 ? {} : objectExample(document, flat, depth);
    default:
      return Object.keys(properties).length && depth <= 3 ? objectExample(document, flat, depth) : null;
  }
}

function objectExample(document, flat, depth) {
  const result = {};
  for (const name of flat.required ?? []) {
    if (flat.properties?.[name]) result[name] = example(document, flat.properties[name], depth + 1);
  }
  return result;
}

/** The example body of an operation's request schema. */
export function exampleBody(document, schema) {
  const value = example(document, schema);
  return value === null ? {} : value;
}
