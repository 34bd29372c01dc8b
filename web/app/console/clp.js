// Class-level permissions as an editor shows them (parse-protocol §8.1): for each operation,
// public, logged-in users, named users and roles, and pointer fields; plus the user fields
// that grant reads and writes, and protectedFields. Converting back gives the CLP object
// `PUT /schemas/:className` takes; the server validates it and says what is wrong.

export const OPERATIONS = ['get', 'find', 'count', 'create', 'update', 'delete', 'addField'];

const list = (text) => String(text ?? '').split(',').map((item) => item.trim()).filter(Boolean);

/** The editor's model of a CLP object. */
export function clpToModel(clp = {}) {
  const operations = {};
  for (const operation of OPERATIONS) {
    const entry = clp[operation] ?? {};
    const who = Object.keys(entry).filter((key) => !['*', 'requiresAuthentication', 'pointerFields'].includes(key) && entry[key] === true);
    operations[operation] = {
      public: entry['*'] === true,
      authenticated: entry.requiresAuthentication === true,
      who: who.join(', '),
      pointerFields: (entry.pointerFields ?? []).join(', '),
    };
  }
  return {
    operations,
    readUserFields: (clp.readUserFields ?? []).join(', '),
    writeUserFields: (clp.writeUserFields ?? []).join(', '),
    protectedFields: JSON.stringify(clp.protectedFields ?? { '*': [] }, null, 2),
  };
}

/** The CLP object of an editor's model. Throws Error when protectedFields is not JSON. */
export function modelToClp(model) {
  const clp = {};
  for (const operation of OPERATIONS) {
    const row = model.operations[operation] ?? {};
    const entry = {};
    if (row.public) entry['*'] = true;
    if (row.authenticated) entry.requiresAuthentication = true;
    for (const who of list(row.who)) entry[who] = true;
    const pointers = list(row.pointerFields);
    if (pointers.length) entry.pointerFields = pointers;
    clp[operation] = entry;
  }
  const readUserFields = list(model.readUserFields);
  const writeUserFields = list(model.writeUserFields);
  if (readUserFields.length) clp.readUserFields = readUserFields;
  if (writeUserFields.length) clp.writeUserFields = writeUserFields;
  let protectedFields;
  try {
    protectedFields = JSON.parse(model.protectedFields || '{}');
  } catch {
    throw new Error('protectedFields is not valid JSON.');
  }
  if (protectedFields === null || typeof protectedFields !== 'object' || Array.isArray(protectedFields)) {
    throw new Error('protectedFields must be a JSON object, e.g. {"*": ["email"]}.');
  }
  clp.protectedFields = protectedFields;
  return clp;
}

/** The editor's rows of an ACL: `[{who, read, write}]`, public first. */
export function aclToRows(acl) {
  const entries = Object.entries(acl ?? {}).map(([who, rights]) => ({ who, read: Boolean(rights.read), write: Boolean(rights.write) }));
  return entries.sort((a, b) => (a.who === '*' ? -1 : b.who === '*' ? 1 : 0));
}

/** The ACL object of editor rows; rows with neither right, or no name, are left out. */
export function rowsToAcl(rows) {
  const acl = {};
  for (const row of rows) {
    const who = row.who.trim();
    if (!who || (!row.read && !row.write)) continue;
    acl[who] = {};
    if (row.read) acl[who].read = true;
    if (row.write) acl[who].write = true;
  }
  return acl;
}
