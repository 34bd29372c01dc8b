// The schema as text, exactly as `parlor schema --format mermaid|markdown` prints it
// (crates/server/src/schema_doc.rs): a Mermaid ER diagram and a Markdown data dictionary,
// built from `/schemas` (which, like the command, leaves out the server's `_` fields).

/** Classes sorted by name, as the server sorts them (by code point, not by locale). */
export function sortedClasses(schemas) {
  return [...schemas].sort((a, b) => compare(a.className, b.className));
}

/** A class's field names in the server's order, internal (`_…`) fields left out. */
export function fieldNames(fields) {
  return Object.keys(fields ?? {})
    .filter((name) => !name.startsWith('_'))
    .sort(compare);
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Mermaid entity names cannot start with `_`: `_User` becomes `User_`. */
export function entity(className) {
  return className.startsWith('_') ? `${className.slice(1)}_` : className;
}

/** `Pointer<_User>` for pointers and relations, the type name otherwise. */
export function describeType(field) {
  return field.targetClass ? `${field.type}<${field.targetClass}>` : field.type;
}

/** The Mermaid `erDiagram`: an entity per class, a relationship per pointer or relation. */
export function mermaid(schemas) {
  const classes = sortedClasses(schemas);
  let out = 'erDiagram\n';
  for (const schema of classes) {
    out += `    ${entity(schema.className)} {\n`;
    for (const name of fieldNames(schema.fields)) {
      const field = schema.fields[name];
      const key = name === 'objectId' ? ' PK' : field.type === 'Pointer' ? ' FK' : '';
      const note = field.required ? ' "required"' : '';
      out += `        ${field.type} ${name}${key}${note}\n`;
    }
    out += '    }\n';
  }
  for (const schema of classes) {
    for (const name of fieldNames(schema.fields)) {
      const field = schema.fields[name];
      let shape;
      if (field.type === 'Pointer') shape = field.required ? '}o--||' : '}o--o|';
      else if (field.type === 'Relation') shape = '}o--o{';
      else continue;
      out += `    ${entity(schema.className)} ${shape} ${entity(field.targetClass)} : ${name}\n`;
    }
  }
  return out;
}

/** The description written for a field (`template/descriptions.json`), or ''. */
export function descriptionOf(descriptions, className, field) {
  return descriptions?.[className]?.[field] ?? descriptions?.['*']?.[field] ?? '';
}

/** The rows of the data dictionary for one class. */
export function dictionaryRows(schema, descriptions) {
  return fieldNames(schema.fields).map((name) => {
    const field = schema.fields[name];
    return {
      name,
      type: describeType(field),
      required: Boolean(field.required),
      defaultValue: field.defaultValue === undefined ? '' : JSON.stringify(field.defaultValue),
      description: descriptionOf(descriptions, schema.className, name),
    };
  });
}

/** The Markdown data dictionary. */
export function markdown(schemas, descriptions) {
  let out = '# Data dictionary\n';
  for (const schema of sortedClasses(schemas)) {
    out += `\n## ${schema.className}\n\n| field | type | required | default | description |\n|---|---|---|---|---|\n`;
    for (const row of dictionaryRows(schema, descriptions)) {
      const defaultValue = row.defaultValue ? `\`${row.defaultValue}\`` : '';
      out += `| ${row.name} | ${row.type} | ${row.required ? 'yes' : ''} | ${defaultValue} | ${row.description.replaceAll('|', '\\|')} |\n`;
    }
    out += `\nClass-level permissions: \`${JSON.stringify(schema.classLevelPermissions ?? {})}\`\n`;
  }
  return out;
}

/** The JSON export: the `/schemas` answer, as `parlor schema --format json` prints it. */
export function jsonExport(schemas) {
  return JSON.stringify({ results: sortedClasses(schemas) }, null, 2);
}
