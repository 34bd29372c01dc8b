// Parlor's Parse SDK shim for Cloud Code: `Parse.Cloud.define` and the triggers, validators,
// and the `Parse.Object` / `Parse.Query` / `Parse.User` / … surface a Parse Server
// `cloud/main.js` uses, over a narrow native bridge (`__parlor_native`) into Parlor's
// operation layer. Nothing here talks HTTP: a save is one operation, run with the rights of
// the request that started the call unless `useMasterKey` or `sessionToken` is given.
(function () {
  "use strict";
  const native = globalThis.__parlor_native;
  delete globalThis.__parlor_native;

  // ---- calls and operations ------------------------------------------------------------

  // The call whose code is running: set when a call starts and when one of its operations
  // settles; the promise jobs that follow belong to that call (see worker.rs).
  let currentCall = 0;
  let nextOp = 1;
  const pendingOps = new Map();

  function op(name, args) {
    return new Promise((resolve, reject) => {
      const id = nextOp++;
      pendingOps.set(id, { resolve, reject, call: currentCall });
      native.op(currentCall, id, name, JSON.stringify(args));
    });
  }

  function settle(id, ok, json) {
    const pending = pendingOps.get(id);
    if (!pending) return;
    pendingOps.delete(id);
    currentCall = pending.call;
    const value = JSON.parse(json);
    if (ok) pending.resolve(value);
    else pending.reject(new ParseError(value.code, value.message));
  }

  function rights(options) {
    const out = {};
    if (options && options.useMasterKey) out.useMasterKey = true;
    if (options && options.sessionToken) out.sessionToken = options.sessionToken;
    return out;
  }

  // ---- logging ---------------------------------------------------------------------------

  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
    try {
      return JSON.stringify(value);
    } catch (_) {
      return String(value);
    }
  }
  function logger(label) {
    const line = (level) => (...args) => native.log(level, label, args.map(show).join(" "));
    return { info: line("info"), log: line("info"), debug: line("info"), warn: line("warn"), error: line("error") };
  }
  let currentLabel = "cloud";
  globalThis.console = {
    log: (...a) => logger(currentLabel).info(...a),
    info: (...a) => logger(currentLabel).info(...a),
    debug: (...a) => logger(currentLabel).info(...a),
    warn: (...a) => logger(currentLabel).warn(...a),
    error: (...a) => logger(currentLabel).error(...a),
  };

  // ---- Parse.Error -------------------------------------------------------------------------

  class ParseError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
      this.message = message;
    }
    toString() {
      return `ParseError: ${this.code} ${this.message}`;
    }
  }
  Object.assign(ParseError, {
    OTHER_CAUSE: -1, INTERNAL_SERVER_ERROR: 1, CONNECTION_FAILED: 100, OBJECT_NOT_FOUND: 101,
    INVALID_QUERY: 102, INVALID_CLASS_NAME: 103, MISSING_OBJECT_ID: 104, INVALID_KEY_NAME: 105,
    INVALID_POINTER: 106, INVALID_JSON: 107, COMMAND_UNAVAILABLE: 108, NOT_INITIALIZED: 109,
    INCORRECT_TYPE: 111, INVALID_CHANNEL_NAME: 112, PUSH_MISCONFIGURED: 115, OBJECT_TOO_LARGE: 116,
    OPERATION_FORBIDDEN: 119, CACHE_MISS: 120, INVALID_NESTED_KEY: 121, INVALID_FILE_NAME: 122,
    INVALID_ACL: 123, TIMEOUT: 124, INVALID_EMAIL_ADDRESS: 125, DUPLICATE_VALUE: 137,
    INVALID_ROLE_NAME: 139, EXCEEDED_QUOTA: 140, SCRIPT_FAILED: 141, VALIDATION_ERROR: 142,
    FILE_DELETE_ERROR: 153, REQUEST_LIMIT_EXCEEDED: 155, INVALID_VALUE: 162,
    USERNAME_MISSING: 200, PASSWORD_MISSING: 201, USERNAME_TAKEN: 202, EMAIL_TAKEN: 203,
    EMAIL_MISSING: 204, EMAIL_NOT_FOUND: 205, SESSION_MISSING: 206,
    MUST_CREATE_USER_THROUGH_SIGNUP: 207, ACCOUNT_ALREADY_LINKED: 208, INVALID_SESSION_TOKEN: 209,
    LINKED_ID_MISSING: 250, INVALID_LINKED_SESSION: 251, UNSUPPORTED_SERVICE: 252,
    AGGREGATE_ERROR: 600,
  });

  // ---- values: JSON <-> Parse objects ----------------------------------------------------

  const subclasses = new Map();

  function objectOf(className, id) {
    const Sub = subclasses.get(className);
    const object = Sub ? new Sub() : new ParseObject(className);
    object.className = className;
    object.id = id;
    return object;
  }

  function decode(value) {
    if (Array.isArray(value)) return value.map(decode);
    if (value === null || typeof value !== "object") return value;
    switch (value.__type) {
      case "Date":
        return new Date(value.iso);
      case "Pointer":
        return objectOf(value.className, value.objectId);
      case "Object": {
        const object = objectOf(value.className, value.objectId);
        object._finish(value);
        return object;
      }
      case "GeoPoint":
        return new ParseGeoPoint(value.latitude, value.longitude);
      case "Relation":
        return new ParseRelation(null, null, value.className);
      case "File":
        return new ParseFile(value.name, undefined, undefined, value.url);
      case "Polygon":
      case "Bytes":
        return value;
    }
    const out = {};
    for (const key of Object.keys(value)) out[key] = decode(value[key]);
    return out;
  }

  // `full`: a Parse object becomes its whole encoding (function results), not a pointer.
  function encode(value, full) {
    if (value === undefined) return undefined;
    if (value === null) return null;
    if (value instanceof Date) return { __type: "Date", iso: value.toISOString() };
    if (value instanceof ParseObject) return full ? value._encodeFull() : value.toPointer();
    if (value instanceof ParseACL) return value.toJSON();
    if (value instanceof ParseGeoPoint || value instanceof ParseFile || value instanceof ParseRelation)
      return value.toJSON();
    if (Array.isArray(value)) return value.map((item) => encode(item, full));
    if (typeof value === "object") {
      const out = {};
      for (const key of Object.keys(value)) {
        const encoded = encode(value[key], full);
        if (encoded !== undefined) out[key] = encoded;
      }
      return out;
    }
    return value;
  }

  function equal(a, b) {
    return JSON.stringify(encode(a)) === JSON.stringify(encode(b));
  }

  // ---- Parse.ACL ---------------------------------------------------------------------------

  class ParseACL {
    constructor(arg) {
      this.permissionsById = {};
      if (arg instanceof ParseObject) {
        this.setReadAccess(arg, true);
        this.setWriteAccess(arg, true);
      } else if (arg && typeof arg === "object") {
        for (const key of Object.keys(arg)) this.permissionsById[key] = Object.assign({}, arg[key]);
      }
    }
    static _key(who) {
      if (who instanceof ParseObject) return who.className === "_Role" ? `role:${who.get("name")}` : who.id;
      return who;
    }
    _set(who, kind, allowed) {
      const key = ParseACL._key(who);
      const entry = this.permissionsById[key] || {};
      if (allowed) entry[kind] = true;
      else delete entry[kind];
      if (Object.keys(entry).length) this.permissionsById[key] = entry;
      else delete this.permissionsById[key];
    }
    _get(who, kind) {
      const entry = this.permissionsById[ParseACL._key(who)];
      return !!(entry && entry[kind]);
    }
    setReadAccess(who, allowed) { this._set(who, "read", allowed); }
    setWriteAccess(who, allowed) { this._set(who, "write", allowed); }
    getReadAccess(who) { return this._get(who, "read"); }
    getWriteAccess(who) { return this._get(who, "write"); }
    setPublicReadAccess(allowed) { this._set("*", "read", allowed); }
    setPublicWriteAccess(allowed) { this._set("*", "write", allowed); }
    getPublicReadAccess() { return this._get("*", "read"); }
    getPublicWriteAccess() { return this._get("*", "write"); }
    setRoleReadAccess(role, allowed) { this._set(`role:${typeof role === "string" ? role : role.get("name")}`, "read", allowed); }
    setRoleWriteAccess(role, allowed) { this._set(`role:${typeof role === "string" ? role : role.get("name")}`, "write", allowed); }
    getRoleReadAccess(role) { return this._get(`role:${typeof role === "string" ? role : role.get("name")}`, "read"); }
    getRoleWriteAccess(role) { return this._get(`role:${typeof role === "string" ? role : role.get("name")}`, "write"); }
    toJSON() { return JSON.parse(JSON.stringify(this.permissionsById)); }
    equals(other) { return other instanceof ParseACL && JSON.stringify(this.toJSON()) === JSON.stringify(other.toJSON()); }
  }

  // ---- small value types -------------------------------------------------------------

  class ParseGeoPoint {
    constructor(latitude, longitude) {
      if (Array.isArray(latitude)) [latitude, longitude] = latitude;
      else if (latitude && typeof latitude === "object") ({ latitude, longitude } = latitude);
      this.latitude = latitude || 0;
      this.longitude = longitude || 0;
    }
    toJSON() { return { __type: "GeoPoint", latitude: this.latitude, longitude: this.longitude }; }
  }

  // Bytes as base64, for files (QuickJS has no btoa).
  const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  function bytesToBase64(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i += 3) {
      const a = bytes[i] & 255, b = bytes[i + 1] & 255, c = bytes[i + 2] & 255;
      out += BASE64[a >> 2] + BASE64[((a & 3) << 4) | (b >> 4)];
      out += i + 1 < bytes.length ? BASE64[((b & 15) << 2) | (c >> 6)] : "=";
      out += i + 2 < bytes.length ? BASE64[c & 63] : "=";
    }
    return out;
  }

  class ParseFile {
    // data: an array of bytes, a Uint8Array or `{base64}` (a data: URL too), as the SDK takes.
    constructor(name, data, type, url) {
      this._name = name;
      this._url = url;
      this._type = type;
      if (data === undefined) return;
      if (Array.isArray(data) || data instanceof Uint8Array) {
        this._base64 = bytesToBase64(data);
      } else if (data && typeof data.base64 === "string") {
        const dataUrl = /^data:([^;,]*)[^,]*,(.*)$/s.exec(data.base64);
        if (dataUrl) this._type = this._type || dataUrl[1];
        this._base64 = dataUrl ? dataUrl[2] : data.base64;
      } else if (data && data.uri) {
        throw new ParseError(ParseError.FILE_SAVE_ERROR, "Parse.File from a uri is not supported in Parlor's Cloud Code: fetch it with Parse.Cloud.httpRequest and pass {base64}");
      } else {
        throw new ParseError(ParseError.FILE_SAVE_ERROR, "Cannot create a Parse.File with that data.");
      }
    }
    name() { return this._name; }
    url() { return this._url; }
    async save(options) {
      if (this._url) return this;
      if (this._base64 === undefined) throw new ParseError(ParseError.FILE_SAVE_ERROR, "This Parse.File has no data to save.");
      const reply = await op("saveFile", Object.assign({ name: this._name, base64: this._base64, type: this._type }, rights(options)));
      this._name = reply.name;
      this._url = reply.url;
      return this;
    }
    async getData() {
      if (this._base64 !== undefined) return this._base64;
      const reply = await op("readFile", { name: this._name });
      this._base64 = reply.base64;
      return this._base64;
    }
    async destroy(options) {
      await op("deleteFile", Object.assign({ name: this._name }, rights(options)));
      this._url = undefined;
      return this;
    }
    toJSON() { return { __type: "File", name: this._name, url: this._url }; }
  }

  class ParseRelation {
    constructor(parent, key, targetClassName) {
      this.parent = parent;
      this.key = key;
      this.targetClassName = targetClassName;
    }
    _op(kind, objects) {
      if (!Array.isArray(objects)) objects = [objects];
      if (objects.length && !this.targetClassName) this.targetClassName = objects[0].className;
      const change = { __op: kind, objects: objects.map((o) => o.toPointer()) };
      this.parent._changes[this.key] = change;
    }
    add(objects) { this._op("AddRelation", objects); }
    remove(objects) { this._op("RemoveRelation", objects); }
    query() {
      const query = new ParseQuery(this.targetClassName || this.parent.className);
      query._where.$relatedTo = { object: this.parent.toPointer(), key: this.key };
      if (!this.targetClassName) query._extra.redirectClassNameForKey = this.key;
      return query;
    }
    toJSON() { return { __type: "Relation", className: this.targetClassName }; }
  }

  // ---- Parse.Object ------------------------------------------------------------------------

  const RESERVED = new Set(["objectId", "createdAt", "updatedAt", "ACL", "className", "__type"]);

  class ParseObject {
    constructor(className, attributes, options) {
      if (typeof className === "object" && className !== null) {
        attributes = className;
        className = undefined;
      }
      this.className = className || this.constructor._parseClassName;
      this.id = undefined;
      this.createdAt = undefined;
      this.updatedAt = undefined;
      this._data = {};
      this._server = {};
      this._changes = {};
      if (attributes) this.set(attributes, options);
    }
    get attributes() { return Object.assign({}, this._data); }
    get objectId() { return this.id; }

    // Server JSON (REST shape) into the object's state: nothing is dirty afterwards.
    _finish(json) {
      for (const key of Object.keys(json)) {
        const value = json[key];
        if (key === "objectId") this.id = value;
        else if (key === "createdAt") this.createdAt = new Date(typeof value === "string" ? value : value.iso);
        else if (key === "updatedAt") this.updatedAt = new Date(typeof value === "string" ? value : value.iso);
        else if (key === "__type" || key === "className") continue;
        else if (key === "ACL") this._data.ACL = new ParseACL(value);
        else this._data[key] = decode(value);
      }
      if (this.updatedAt === undefined && this.createdAt !== undefined) this.updatedAt = this.createdAt;
      this._server = Object.assign({}, this._data);
      this._changes = {};
      return this;
    }

    get(key) { return this._data[key]; }
    has(key) { return this._data[key] !== undefined && this._data[key] !== null; }
    escape(key) { return String(this.get(key) == null ? "" : this.get(key)).replace(/[&<>"'/]/g, (c) => `&#${c.charCodeAt(0)};`); }
    set(key, value, options) {
      if (key && typeof key === "object") {
        options = value;
        for (const name of Object.keys(key)) this.set(name, key[name], options);
        return this;
      }
      if (key === "objectId" || key === "id") {
        this.id = value;
        return this;
      }
      if (key === "createdAt" || key === "updatedAt") return this;
      if (key === "ACL" && value && !(value instanceof ParseACL)) value = new ParseACL(value);
      if (value && typeof value === "object" && value.__op) return this._applyOp(key, value);
      if (value === undefined) return this.unset(key);
      this._data[key] = value;
      this._changes[key] = { set: value };
      return this;
    }
    _applyOp(key, change) {
      switch (change.__op) {
        case "Increment": return this.increment(key, change.amount);
        case "Add": return this.add(key, change.objects);
        case "AddUnique": return this.addUnique(key, change.objects);
        case "Remove": return this.remove(key, change.objects);
        case "Delete": return this.unset(key);
      }
      this._changes[key] = { raw: change };
      return this;
    }
    unset(key) {
      delete this._data[key];
      this._changes[key] = { raw: { __op: "Delete" } };
      return this;
    }
    increment(key, amount) {
      if (amount === undefined) amount = 1;
      if (typeof amount !== "number") throw new Error("Cannot increment by a non-numeric amount.");
      this._data[key] = (this._data[key] || 0) + amount;
      const previous = this._changes[key];
      if (previous && previous.raw && previous.raw.__op === "Increment") previous.raw.amount += amount;
      else if (previous) this._changes[key] = { set: this._data[key] };
      else this._changes[key] = { raw: { __op: "Increment", amount } };
      return this;
    }
    decrement(key, amount) { return this.increment(key, -(amount === undefined ? 1 : amount)); }
    _arrayOp(kind, key, items) {
      const list = Array.isArray(items) ? items : [items];
      const current = Array.isArray(this._data[key]) ? this._data[key].slice() : [];
      if (kind === "Add") current.push(...list);
      else if (kind === "AddUnique") for (const item of list) { if (!current.some((c) => equal(c, item))) current.push(item); }
      else for (const item of list) { for (let i = current.length - 1; i >= 0; i--) if (equal(current[i], item)) current.splice(i, 1); }
      this._data[key] = current;
      const previous = this._changes[key];
      if (previous && previous.raw && previous.raw.__op === kind) previous.raw.objects.push(...list);
      else if (previous) this._changes[key] = { set: current };
      else this._changes[key] = { raw: { __op: kind, objects: list.slice() } };
      return this;
    }
    add(key, item) { return this._arrayOp("Add", key, [item]); }
    addAll(key, items) { return this._arrayOp("Add", key, items); }
    addUnique(key, item) { return this._arrayOp("AddUnique", key, [item]); }
    addAllUnique(key, items) { return this._arrayOp("AddUnique", key, items); }
    remove(key, item) { return this._arrayOp("Remove", key, [item]); }
    removeAll(key, items) { return this._arrayOp("Remove", key, items); }
    relation(key) {
      const existing = this._data[key];
      return new ParseRelation(this, key, existing instanceof ParseRelation ? existing.targetClassName : undefined);
    }
    op(key) {
      const change = this._changes[key];
      if (!change) return undefined;
      return change.raw || { __op: "Set", value: change.set };
    }
    dirty(key) { return key === undefined ? this.dirtyKeys().length > 0 || !this.id : key in this._changes; }
    dirtyKeys() { return Object.keys(this._changes); }
    isNew() { return !this.id; }
    existed() { return !!this._existed; }
    isValid() { return true; }
    getACL() { return this._data.ACL; }
    setACL(acl) { return this.set("ACL", acl); }
    revert(...keys) {
      const names = keys.length ? keys : Object.keys(this._changes);
      for (const key of names) {
        delete this._changes[key];
        if (key in this._server) this._data[key] = this._server[key];
        else delete this._data[key];
      }
      return this;
    }
    clear() { for (const key of Object.keys(this._data)) this.unset(key); return this; }
    clone() {
      const copy = objectOf(this.className, undefined);
      copy.set(this.attributes);
      return copy;
    }
    equals(other) { return other instanceof ParseObject && other.className === this.className && other.id === this.id && this.id !== undefined; }
    toPointer() { return { __type: "Pointer", className: this.className, objectId: this.id }; }
    toJSON() {
      const out = encode(this._data);
      if (this.id) out.objectId = this.id;
      if (this.createdAt) out.createdAt = this.createdAt.toISOString();
      if (this.updatedAt) out.updatedAt = this.updatedAt.toISOString();
      return out;
    }
    _encodeFull() {
      const out = this.toJSON();
      out.__type = "Object";
      out.className = this.className;
      return out;
    }
    // The REST body of the pending changes.
    _body() {
      const body = {};
      for (const key of Object.keys(this._changes)) {
        const change = this._changes[key];
        body[key] = change.raw ? encode(change.raw) : encode(change.set);
      }
      return body;
    }
    async save(key, value, options) {
      let attrs = null;
      if (key && typeof key === "object") {
        attrs = key;
        options = value;
      } else if (typeof key === "string") {
        attrs = { [key]: value };
      } else {
        options = value;
      }
      if (attrs) this.set(attrs);
      // Unsaved objects this one points to are saved first, as the SDK does.
      for (const change of Object.values(this._changes)) {
        const inner = change.set;
        const list = Array.isArray(inner) ? inner : [inner];
        for (const item of list) {
          if (item instanceof ParseObject && !item.id && item !== this) await item.save(null, options);
          if (item instanceof ParseFile && !item.url()) await item.save(options);
        }
      }
      const args = Object.assign({ className: this.className, body: this._body(), context: options && options.context }, rights(options));
      let reply;
      if (this.id) {
        args.objectId = this.id;
        reply = await op("update", args);
      } else {
        reply = await op("create", args);
      }
      this._changes = {};
      this._finishSave(reply);
      return this;
    }
    _finishSave(reply) {
      for (const key of Object.keys(reply)) {
        if (key === "objectId") this.id = reply[key];
        else if (key === "createdAt") { this.createdAt = new Date(reply[key]); this.updatedAt = this.createdAt; }
        else if (key === "updatedAt") this.updatedAt = new Date(reply[key]);
        else if (key === "sessionToken") this._sessionToken = reply[key];
        else if (!RESERVED.has(key)) this._data[key] = decode(reply[key]);
      }
      this._server = Object.assign({}, this._data);
      this._existed = true;
    }
    async destroy(options) {
      if (!this.id) return this;
      await op("delete", Object.assign({ className: this.className, objectId: this.id }, rights(options)));
      return this;
    }
    async fetch(options) {
      const query = {};
      if (options && options.include) query.include = [].concat(options.include).join(",");
      const json = await op("get", Object.assign({ className: this.className, objectId: this.id, query }, rights(options)));
      this._data = {};
      this._finish(json);
      return this;
    }
    fetchWithInclude(include, options) { return this.fetch(Object.assign({}, options, { include })); }
    async fetchIfNeeded(options) { return Object.keys(this._server).length ? this : this.fetch(options); }
    static async saveAll(list, options) { for (const object of list) await object.save(null, options); return list; }
    static async destroyAll(list, options) { for (const object of list) await object.destroy(options); return list; }
    static async fetchAll(list, options) { for (const object of list) await object.fetch(options); return list; }
    static async fetchAllIfNeeded(list, options) { for (const object of list) await object.fetchIfNeeded(options); return list; }
    static createWithoutData(id) { return objectOf(this._parseClassName, id); }
    static extend(className, protoProps, classProps) {
      if (typeof className === "object") className = className.className;
      if (className === "User") className = "_User";
      if (className === "Role") className = "_Role";
      if (className === "Session") className = "_Session";
      const existing = subclasses.get(className);
      const Base = className === "_User" ? ParseUser : className === "_Role" ? ParseRole : ParseObject;
      const Sub = existing && !protoProps && !classProps ? existing : class extends (existing || Base) {
        constructor(attributes, options) {
          super(className, attributes, options);
          if (typeof this.initialize === "function") this.initialize(attributes, options);
        }
      };
      Sub._parseClassName = className;
      if (protoProps) for (const key of Object.keys(protoProps)) Object.defineProperty(Sub.prototype, key, { value: protoProps[key], writable: true, configurable: true });
      if (classProps) Object.assign(Sub, classProps);
      subclasses.set(className, Sub);
      return Sub;
    }
    static registerSubclass(className, Sub) {
      Sub._parseClassName = className;
      subclasses.set(className, Sub);
    }
  }

  class ParseUser extends ParseObject {
    constructor(attributes, options) {
      super("_User", attributes, options);
    }
    getUsername() { return this.get("username"); }
    setUsername(name) { return this.set("username", name); }
    setPassword(password) { return this.set("password", password); }
    getEmail() { return this.get("email"); }
    setEmail(email) { return this.set("email", email); }
    getSessionToken() { return this._sessionToken; }
    authenticated() { return !!this._sessionToken; }
    // Signs up through the sign-up operation: the user gets a session (`getSessionToken()`).
    async signUp(attrs, options) {
      if (attrs) this.set(attrs);
      const reply = await op("signUp", Object.assign({ body: this._body() }, rights(options)));
      this._changes = {};
      this._finishSave(reply);
      return this;
    }
    static current() { return null; }
    static async logIn(username, password) {
      return userFrom(await op("logIn", { username, password }));
    }
    static async become(sessionToken) {
      return userFrom(await op("become", { sessionToken }));
    }
    static async requestPasswordReset(email) {
      await op("requestPasswordReset", { email });
    }
    static async logOut() {}
  }
  ParseUser._parseClassName = "_User";
  function userFrom(json) {
    const user = objectOf("_User", json.objectId);
    user._finish(json);
    user._existed = true;
    if (json.sessionToken) user._sessionToken = json.sessionToken;
    delete user._data.sessionToken;
    user._server = Object.assign({}, user._data);
    return user;
  }
  subclasses.set("_User", ParseUser);

  class ParseRole extends ParseObject {
    constructor(name, acl) {
      super("_Role");
      if (typeof name === "string") this.set("name", name);
      if (acl) this.setACL(acl);
    }
    getName() { return this.get("name"); }
    setName(name) { return this.set("name", name); }
    getUsers() { return this.relation("users"); }
    getRoles() { return this.relation("roles"); }
  }
  ParseRole._parseClassName = "_Role";
  subclasses.set("_Role", ParseRole);

  class ParseSession extends ParseObject {
    constructor(attributes) { super("_Session", attributes); }
    getSessionToken() { return this.get("sessionToken"); }
  }
  ParseSession._parseClassName = "_Session";
  subclasses.set("_Session", ParseSession);

  // ---- Parse.Query -------------------------------------------------------------------------

  function quote(text) {
    return "\\Q" + String(text).replace(/\\E/g, "\\E\\\\E\\Q") + "\\E";
  }

  class ParseQuery {
    constructor(objectClass) {
      if (typeof objectClass === "string") {
        this.className = objectClass === "User" ? "_User" : objectClass === "Role" ? "_Role" : objectClass;
      } else if (objectClass && objectClass._parseClassName) {
        this.className = objectClass._parseClassName;
      } else if (objectClass instanceof ParseObject) {
        this.className = objectClass.className;
      } else {
        throw new TypeError("A ParseQuery must be constructed with a ParseObject or class name.");
      }
      this._where = {};
      this._include = [];
      this._keys = null;
      this._exclude = [];
      this._limit = -1;
      this._skip = 0;
      this._order = null;
      this._extra = {};
    }
    _add(key, condition, value) {
      const current = this._where[key];
      if (!current || typeof current !== "object" || current.__type || Array.isArray(current)) this._where[key] = {};
      this._where[key][condition] = encode(value);
      return this;
    }
    equalTo(key, value) {
      if (key && typeof key === "object") { for (const k of Object.keys(key)) this.equalTo(k, key[k]); return this; }
      if (value === undefined) return this.doesNotExist(key);
      this._where[key] = encode(value);
      return this;
    }
    notEqualTo(key, value) { return this._add(key, "$ne", value); }
    lessThan(key, value) { return this._add(key, "$lt", value); }
    lessThanOrEqualTo(key, value) { return this._add(key, "$lte", value); }
    greaterThan(key, value) { return this._add(key, "$gt", value); }
    greaterThanOrEqualTo(key, value) { return this._add(key, "$gte", value); }
    containedIn(key, values) { return this._add(key, "$in", values); }
    notContainedIn(key, values) { return this._add(key, "$nin", values); }
    containedBy(key, values) { return this._add(key, "$containedBy", values); }
    containsAll(key, values) { return this._add(key, "$all", values); }
    containsAllStartingWith(key, values) { return this._add(key, "$all", [].concat(values).map((v) => ({ $regex: "^" + quote(v) }))); }
    exists(key) { return this._add(key, "$exists", true); }
    doesNotExist(key) { return this._add(key, "$exists", false); }
    matches(key, regex, modifiers) {
      this._add(key, "$regex", typeof regex === "string" ? regex : regex.source);
      const flags = modifiers || (regex instanceof RegExp ? (regex.ignoreCase ? "i" : "") + (regex.multiline ? "m" : "") : "");
      if (flags) this._where[key].$options = flags;
      return this;
    }
    contains(key, text) { return this._add(key, "$regex", quote(text)); }
    startsWith(key, text) { return this._add(key, "$regex", "^" + quote(text)); }
    endsWith(key, text) { return this._add(key, "$regex", quote(text) + "$"); }
    fullText(key, value) { return this._add(key, "$text", { $search: { $term: value } }); }
    matchesQuery(key, query) { return this._add(key, "$inQuery", query._subquery()); }
    doesNotMatchQuery(key, query) { return this._add(key, "$notInQuery", query._subquery()); }
    matchesKeyInQuery(key, queryKey, query) { return this._add(key, "$select", { key: queryKey, query: query._subquery() }); }
    doesNotMatchKeyInQuery(key, queryKey, query) { return this._add(key, "$dontSelect", { key: queryKey, query: query._subquery() }); }
    near(key, point) { return this._add(key, "$nearSphere", point); }
    withinKilometers(key, point, distance) { this.near(key, point); this._where[key].$maxDistanceInKilometers = distance; return this; }
    withinMiles(key, point, distance) { this.near(key, point); this._where[key].$maxDistanceInMiles = distance; return this; }
    withinRadians(key, point, distance) { this.near(key, point); this._where[key].$maxDistance = distance; return this; }
    withinGeoBox(key, southwest, northeast) { return this._add(key, "$within", { $box: [southwest, northeast] }); }
    relatedTo(object, key) { this._where.$relatedTo = { object: object.toPointer(), key }; return this; }
    _subquery() {
      const out = { className: this.className, where: this._where };
      if (this._limit >= 0) out.limit = this._limit;
      if (this._skip) out.skip = this._skip;
      if (this._order) out.order = this._order;
      return out;
    }
    include(...keys) { for (const key of keys.flat()) this._include.push(key); return this; }
    includeAll() { this._include.push("*"); return this; }
    select(...keys) { this._keys = (this._keys || []).concat(keys.flat()); return this; }
    exclude(...keys) { this._exclude = this._exclude.concat(keys.flat()); return this; }
    limit(n) { this._limit = n; return this; }
    skip(n) { this._skip = n; return this; }
    ascending(...keys) { this._order = keys.flat().join(","); return this; }
    addAscending(...keys) { this._order = [this._order, ...keys.flat()].filter(Boolean).join(","); return this; }
    descending(...keys) { this._order = keys.flat().map((k) => "-" + k).join(","); return this; }
    addDescending(...keys) { this._order = [this._order, ...keys.flat().map((k) => "-" + k)].filter(Boolean).join(","); return this; }
    withJSON(json) {
      if (json.where) this._where = json.where;
      if (json.include) this._include = String(json.include).split(",");
      if (json.keys) this._keys = String(json.keys).split(",");
      if (json.limit !== undefined) this._limit = json.limit;
      if (json.skip !== undefined) this._skip = json.skip;
      if (json.order) this._order = json.order;
      return this;
    }
    toJSON() {
      const out = { where: this._where };
      if (this._include.length) out.include = this._include.join(",");
      if (this._keys) out.keys = this._keys.join(",");
      if (this._exclude.length) out.excludeKeys = this._exclude.join(",");
      if (this._limit >= 0) out.limit = this._limit;
      if (this._skip) out.skip = this._skip;
      if (this._order) out.order = this._order;
      return Object.assign(out, this._extra);
    }
    static fromJSON(className, json) { return new ParseQuery(className).withJSON(json); }
    _run(query, options) {
      return op("find", Object.assign({ className: this.className, query }, rights(options)));
    }
    async find(options) {
      const reply = await this._run(this.toJSON(), options);
      const className = reply.className || this.className;
      return reply.results.map((json) => objectOf(className, json.objectId)._finish(json));
    }
    async first(options) {
      const query = this.toJSON();
      query.limit = 1;
      const reply = await this._run(query, options);
      return reply.results.length ? objectOf(this.className, reply.results[0].objectId)._finish(reply.results[0]) : undefined;
    }
    async count(options) {
      const query = this.toJSON();
      query.limit = 0;
      query.count = 1;
      return (await this._run(query, options)).count;
    }
    async get(id, options) {
      const query = this.toJSON();
      query.where = { $and: [query.where, { objectId: id }] };
      query.limit = 1;
      const reply = await this._run(query, options);
      if (!reply.results.length) throw new ParseError(ParseError.OBJECT_NOT_FOUND, "Object not found.");
      return objectOf(this.className, id)._finish(reply.results[0]);
    }
    async each(callback, options) {
      const batch = (options && options.batchSize) || 100;
      let last = null;
      for (;;) {
        const query = this.toJSON();
        query.order = "objectId";
        query.limit = batch;
        if (last) query.where = { $and: [query.where, { objectId: { $gt: last } }] };
        const page = (await this._run(query, options)).results;
        for (const json of page) await callback(objectOf(this.className, json.objectId)._finish(json));
        if (page.length < batch) return;
        last = page[page.length - 1].objectId;
      }
    }
    async map(callback, options) { const out = []; let i = 0; await this.each(async (o) => out.push(await callback(o, i++)), options); return out; }
    async filter(callback, options) { const out = []; let i = 0; await this.each(async (o) => { if (await callback(o, i++)) out.push(o); }, options); return out; }
    async reduce(callback, initial, options) { let acc = initial; let i = 0; await this.each(async (o) => { acc = await callback(acc, o, i++); }, options); return acc; }
    // As in the SDK, both run with the master key unless `useMasterKey: false` is given
    // (then the server refuses them); the pipeline also travels as JSON text, whose key
    // order (`$sort` keys) a parsed object would lose.
    async distinct(key, options) {
      const query = { distinct: key, where: this._where };
      return (await op("aggregate", Object.assign({ className: this.className, query }, rights(Object.assign({ useMasterKey: true }, options))))).results;
    }
    async aggregate(pipeline, options) {
      if (!Array.isArray(pipeline) && (typeof pipeline !== "object" || pipeline === null)) throw new Error("Invalid pipeline must be Array or Object");
      let stages = pipeline;
      if (Object.keys(this._where).length) {
        stages = Array.isArray(stages) ? stages.slice() : [stages];
        stages.unshift({ $match: this._where });
      }
      const query = { pipeline: encode(stages) };
      const args = { className: this.className, query, raw: JSON.stringify(query.pipeline) };
      return (await op("aggregate", Object.assign(args, rights(Object.assign({ useMasterKey: true }, options))))).results;
    }
    static or(...queries) { return ParseQuery._combine("$or", queries); }
    static and(...queries) { return ParseQuery._combine("$and", queries); }
    static nor(...queries) { return ParseQuery._combine("$nor", queries); }
    static _combine(kind, queries) {
      const query = new ParseQuery(queries[0].className);
      query._where[kind] = queries.map((q) => q._where);
      return query;
    }
  }

  // ---- Parse.Config --------------------------------------------------------------------

  class ParseConfig {
    constructor(params) { this.attributes = params || {}; }
    get(key) { return this.attributes[key]; }
    static async get(options) {
      const reply = await op("config", rights(options || { useMasterKey: true }));
      return new ParseConfig(decode(reply.params || {}));
    }
    static current() { return new ParseConfig({}); }
  }

  // ---- Parse.Cloud -------------------------------------------------------------------------

  const functions = new Map();
  const jobs = new Map();
  const triggers = new Map();
  const tools = {};

  function className(target) {
    if (typeof target === "string") {
      if (target === "User") return "_User";
      if (target === "Role") return "_Role";
      if (target === "Session") return "_Session";
      return target;
    }
    if (target && target._parseClassName) return target._parseClassName;
    throw new Error("Parse.Cloud trigger needs a class name or a Parse.Object subclass");
  }

  function checkHandler(name, handler) {
    if (typeof handler !== "function") throw new TypeError(`${name}: the handler must be a function`);
  }

  function addTrigger(kind, target, handler, validator) {
    checkHandler(kind, handler);
    const name = kind === "beforeLogin" || kind === "afterLogin" ? "_User" : kind === "afterLogout" ? "_Session" : kind === "beforeConnect" ? "@Connect" : className(target);
    triggers.set(`${kind}:${name}`, { handler, validator });
  }

  const Cloud = {
    define(name, handler, validator) {
      checkHandler(`Parse.Cloud.define("${name}")`, handler);
      const options = validator && typeof validator === "object" ? validator : undefined;
      functions.set(name, { handler, validator });
      if (options && options.tool) tools[name] = encode(options.tool);
    },
    job(name, handler) {
      checkHandler(`Parse.Cloud.job("${name}")`, handler);
      jobs.set(name, handler);
    },
    async run(name, params, options) {
      const reply = await op("run", Object.assign({ name, params: encode(params || {}) }, rights(options)));
      return decode(reply);
    },
    async httpRequest(options) {
      const reply = await op("httpRequest", {
        method: options.method || "GET",
        url: options.url,
        headers: options.headers || {},
        params: options.params,
        body: typeof options.body === "string" || options.body === undefined ? options.body : JSON.stringify(options.body),
        followRedirects: !!options.followRedirects,
      });
      const response = { status: reply.status, headers: reply.headers, text: reply.text, data: undefined };
      try { response.data = JSON.parse(reply.text); } catch (_) { response.data = undefined; }
      if (reply.status >= 400) throw response;
      return response;
    },
    useMasterKey() {},
  };
  for (const kind of ["beforeSave", "afterSave", "beforeDelete", "afterDelete", "beforeFind", "afterFind", "beforeSubscribe", "afterLiveQueryEvent", "afterEvent"]) {
    Cloud[kind] = (target, handler, validator) => addTrigger(kind === "afterEvent" ? "afterLiveQueryEvent" : kind, target, handler, validator);
  }
  for (const kind of ["beforeLogin", "afterLogin", "afterLogout", "beforeConnect"]) {
    Cloud[kind] = (handler, validator) => addTrigger(kind, null, handler, validator);
  }
  for (const kind of ["beforeSaveFile", "afterSaveFile", "beforeDeleteFile", "afterDeleteFile", "beforePasswordResetRequest", "sendEmail"]) {
    Cloud[kind] = () => { throw new Error(`Parse.Cloud.${kind} is not supported by Parlor`); };
  }

  // ---- validators (§10.4) ----------------------------------------------------------------

  function typeName(fn) {
    const match = fn && fn.toString().match(/^\s*function (\w+)/);
    return (match ? match[1] : "").toLowerCase();
  }

  async function validate(validator, request) {
    if (!validator) return;
    if (typeof validator === "function") return validator(request);
    if (request.master && !validator.validateMasterKey) return;
    let user = request.user;
    if (!user && request.object && request.object.className === "_User" && !request.object.existed()) user = request.object;
    if ((validator.requireUser || validator.requireAnyUserRoles || validator.requireAllUserRoles) && !user) {
      throw "Validation failed. Please login to continue.";
    }
    if (validator.requireMaster && !request.master) {
      throw "Validation failed. Master key is required to complete this request.";
    }
    const params = request.object ? request.object.toJSON() : request.params || {};
    const required = (key) => {
      if (params[key] == null) throw `Validation failed. Please specify data for ${key}.`;
    };
    const checkOptions = async (rule, key, value) => {
      let options = rule.options;
      if (typeof options === "function") {
        let result;
        try {
          result = await options(value);
        } catch (e) {
          throw rule.error || (e && e.message) || e || `Validation failed. Invalid value for ${key}.`;
        }
        if (!result && result != null) throw rule.error || `Validation failed. Invalid value for ${key}.`;
        return;
      }
      if (!Array.isArray(options)) options = [options];
      if (!options.includes(value)) throw rule.error || `Validation failed. Invalid option for ${key}. Expected: ${options.join(", ")}`;
    };
    if (Array.isArray(validator.fields)) {
      for (const key of validator.fields) required(key);
    } else if (validator.fields) {
      const pending = [];
      for (const key of Object.keys(validator.fields)) {
        const rule = validator.fields[key];
        let value = params[key];
        if (typeof rule === "string") required(rule);
        if (!rule || typeof rule !== "object") continue;
        if (rule.default != null && value == null) {
          value = typeof rule.default === "function" ? rule.default(request) : rule.default;
          params[key] = value;
          if (request.object) request.object.set(key, value);
          else if (request.params) request.params[key] = value;
        }
        if (rule.constant && request.object) {
          if (request.original) request.object.revert(key);
          else if (rule.default != null) request.object.set(key, rule.default);
        }
        if (rule.required) required(key);
        if (!rule.required && value === undefined) continue;
        if (rule.type) {
          const expected = typeName(rule.type);
          const actual = Array.isArray(value) ? "array" : typeof value;
          if (actual !== expected) throw `Validation failed. Invalid type for ${key}. Expected: ${expected}`;
        }
        if (rule.options) pending.push(checkOptions(rule, key, value));
      }
      await Promise.all(pending);
    }
    const roles = request._roles || [];
    let any = validator.requireAnyUserRoles;
    let all = validator.requireAllUserRoles;
    if (typeof any === "function") any = await any();
    if (typeof all === "function") all = await all();
    if (any && !any.some((role) => roles.includes(role))) {
      throw validator.error || "Validation failed. User does not match the required roles.";
    }
    if (all) for (const role of all) if (!roles.includes(role)) throw "Validation failed. User does not match all the required roles.";
    const userKeys = validator.requireUserKeys || [];
    if (Array.isArray(userKeys)) {
      for (const key of userKeys) {
        if (!user) throw "Please login to make this request.";
        if (user.get(key) == null) throw `Validation failed. Please set data for ${key} on your account.`;
      }
    } else {
      await Promise.all(Object.keys(userKeys).map((key) => (userKeys[key].options ? checkOptions(userKeys[key], key, user && user.get(key)) : null)));
    }
  }

  // A thrown value as `{code, message}`: a Parse.Error keeps its code, anything else is
  // `fallback` (141 for code, 142 for validators).
  function failure(error, fallback) {
    if (error instanceof ParseError || (error && typeof error.code === "number" && typeof error.message === "string")) {
      return { code: error.code, message: error.message };
    }
    if (typeof InternalError !== "undefined" && error instanceof InternalError && /out of memory/.test(error.message)) {
      return { code: ParseError.SCRIPT_FAILED, message: "Cloud Code ran out of memory (--cloud-memory-limit)", oom: true };
    }
    if (typeof error === "string") return { code: fallback, message: error };
    if (error instanceof Error) return { code: fallback, message: error.message || String(error) };
    if (error === undefined || error === null) return { code: fallback, message: fallback === 142 ? "Validation failed." : "Script failed." };
    return { code: fallback, message: show(error) };
  }

  // ---- dispatch ----------------------------------------------------------------------------

  // A property computed on first use (then an ordinary one): most triggers never read
  // `request.user` or `request.log`, and building them is most of a small trigger's cost.
  function lazy(object, key, make) {
    const settle = (value) => Object.defineProperty(object, key, { value, writable: true, configurable: true, enumerable: true });
    Object.defineProperty(object, key, {
      configurable: true,
      enumerable: true,
      get() { const value = make(); settle(value); return value; },
      set(value) { settle(value); },
    });
  }

  function requestBase(raw, label) {
    const request = {
      master: !!raw.master,
      installationId: raw.installationId || undefined,
      headers: raw.headers || {},
      ip: raw.ip || undefined,
      context: raw.context || {},
      _roles: raw.roles || [],
    };
    lazy(request, "user", () => {
      if (!raw.user) return undefined;
      const user = decode(raw.user);
      if (raw.user.sessionToken) user._sessionToken = raw.user.sessionToken;
      return user;
    });
    lazy(request, "log", () => logger(label));
    return request;
  }

  async function runFunction(name, raw) {
    const entry = functions.get(name);
    if (!entry) throw new ParseError(ParseError.SCRIPT_FAILED, `Invalid function: "${name}"`);
    const request = requestBase(raw, name);
    request.params = decode(raw.params || {});
    request.functionName = name;
    try {
      await validate(entry.validator, request);
    } catch (e) {
      throw failure(e, ParseError.VALIDATION_ERROR);
    }
    // `{}` tells a function that returned nothing (Parse answers `{}`, no `result`) from one
    // that returned null.
    const value = await entry.handler(request);
    return value === undefined ? {} : { value: encode(value, true) };
  }

  // The request of a trigger on an object; `json` is the REST shape of the object.
  function objectFromJSON(className, json) {
    const object = objectOf(className, json && json.objectId);
    if (json) object._finish(json);
    object._existed = !!json;
    return object;
  }

  async function guarded(entry, request) {
    try {
      await validate(entry.validator, request);
    } catch (e) {
      throw failure(e, ParseError.VALIDATION_ERROR);
    }
    return entry.handler(request);
  }

  async function runTrigger(name, raw) {
    const entry = triggers.get(name);
    if (!entry) return null;
    const [kind, className] = name.split(":");
    const request = requestBase(raw, `${kind} ${className}`);
    request.triggerName = kind;
    switch (kind) {
      case "beforeSave": {
        const original = raw.original ? objectFromJSON(className, raw.original) : undefined;
        const object = raw.original ? objectFromJSON(className, raw.original) : objectOf(className, undefined);
        const body = raw.body || {};
        for (const key of Object.keys(body)) {
          if (key === "objectId" || key === "createdAt" || key === "updatedAt") continue;
          object.set(key, key === "ACL" ? body[key] : decode(body[key]));
        }
        if (original) object._existed = true;
        const incoming = {};
        const before = object._body();
        for (const key of Object.keys(before)) incoming[key] = JSON.stringify(before[key]);
        request.object = object;
        request.original = original;
        const returned = await guarded(entry, request);
        const result = returned instanceof ParseObject ? returned : object;
        const out = result._body();
        // What the client sent and the trigger left alone keeps its exact form (ops too).
        for (const key of Object.keys(body)) if (key in out && incoming[key] === JSON.stringify(out[key])) out[key] = body[key];
        const echo = Object.keys(out).filter((key) => incoming[key] !== JSON.stringify(out[key]));
        return { body: out, echo, context: request.context };
      }
      case "afterSave": {
        request.object = objectFromJSON(className, raw.object);
        if (raw.original) request.original = objectFromJSON(className, raw.original);
        const returned = await guarded(entry, request);
        // A plain object returned is the response; otherwise the object as the trigger left
        // it (or the one it returns) tells which fields it changed.
        if (returned && typeof returned === "object" && !(returned instanceof ParseObject)) return { json: encode(returned, true) };
        const result = returned instanceof ParseObject ? returned : request.object;
        return { object: result._encodeFull() };
      }
      case "afterDelete":
      case "beforeDelete":
        request.object = objectFromJSON(className, raw.object);
        if (raw.original) request.original = objectFromJSON(className, raw.original);
        await guarded(entry, request);
        return null;
      case "beforeFind": {
        request.query = ParseQuery.fromJSON(className, raw.query || {});
        request.count = !!raw.count;
        request.isGet = !!raw.isGet;
        const returned = await guarded(entry, request);
        const query = returned instanceof ParseQuery ? returned : request.query;
        return query.toJSON();
      }
      case "afterFind": {
        request.objects = (raw.objects || []).map((json) => objectFromJSON(className, json));
        request.query = ParseQuery.fromJSON(className, raw.query || {});
        const returned = await guarded(entry, request);
        const objects = Array.isArray(returned) ? returned : request.objects;
        return objects.map((object) => (object instanceof ParseObject ? object._encodeFull() : encode(object, true)));
      }
      case "beforeLogin":
      case "afterLogin":
      case "afterLogout":
        request.object = objectFromJSON(className, raw.object);
        if (kind !== "afterLogout") request.user = request.object;
        await guarded(entry, request);
        return null;
      case "beforeConnect":
        // A LiveQuery client's `connect`: throwing refuses it.
        request.event = "connect";
        request.sessionToken = raw.sessionToken || undefined;
        request.useMasterKey = !!raw.master;
        request.clients = raw.clients || 0;
        request.subscriptions = raw.subscriptions || 0;
        await guarded(entry, request);
        return null;
      case "beforeSubscribe": {
        request.query = ParseQuery.fromJSON(className, raw.query || {});
        request.op = "subscribe";
        request.requestId = raw.requestId;
        request.sessionToken = raw.sessionToken;
        const returned = await guarded(entry, request);
        const query = returned instanceof ParseQuery ? returned : request.query;
        return query.toJSON();
      }
      case "afterLiveQueryEvent": {
        request.event = raw.event;
        request.object = raw.object ? objectFromJSON(className, raw.object) : undefined;
        request.original = raw.original ? objectFromJSON(className, raw.original) : undefined;
        request.sendEvent = true;
        await guarded(entry, request);
        return {
          sendEvent: request.sendEvent !== false,
          object: request.object ? request.object._encodeFull() : null,
          original: request.original ? request.original._encodeFull() : null,
        };
      }
    }
    return null;
  }

  async function runJob(name, raw) {
    const handler = jobs.get(name);
    if (!handler) throw new ParseError(ParseError.SCRIPT_FAILED, "Invalid job.");
    const request = requestBase(raw, `job ${name}`);
    request.params = decode(raw.params || {});
    request.jobName = name;
    request.jobId = raw.jobId;
    request.message = (text) => op("jobMessage", { jobId: raw.jobId, message: String(text) });
    return encode(await handler(request), true);
  }

  // An app's auth adapter (Parse Server's `auth` option): a module exporting
  // `validateAuthData(authData, options, request)`, and optionally `validateAppId`.
  async function runAuth(name, raw) {
    const module = requireMain(raw.module);
    const adapter = module && typeof module.validateAuthData !== "function" && module.default ? module.default : module;
    if (!adapter || typeof adapter.validateAuthData !== "function") {
      throw new ParseError(ParseError.SCRIPT_FAILED, `the auth adapter of ${name} does not export validateAuthData`);
    }
    const options = raw.options || {};
    const request = requestBase(raw, `auth ${name}`);
    await adapter.validateAuthData(raw.authData, options, request);
    if (options.appIds && typeof adapter.validateAppId === "function") {
      await adapter.validateAppId(options.appIds, raw.authData, options, request);
    }
    return {};
  }

  const kinds = { function: runFunction, trigger: runTrigger, job: runJob, auth: runAuth };

  function dispatch(callId, kind, name, json) {
    currentCall = callId;
    currentLabel = name;
    let promise;
    try {
      promise = Promise.resolve(kinds[kind](name, JSON.parse(json)));
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (result) => native.finish(callId, true, JSON.stringify(result === undefined ? null : result)),
      (error) => native.finish(callId, false, JSON.stringify(error && error.code !== undefined && !(error instanceof Error) ? error : failure(error, ParseError.SCRIPT_FAILED))),
    );
  }

  // ---- modules (CommonJS) --------------------------------------------------------------

  const loaded = new Map();
  function requireFrom(from) {
    return (specifier) => {
      if (specifier === "parse/node" || specifier === "parse" || specifier === "parse-server") return globalThis.Parse;
      return requireMain(native.resolve(from, specifier));
    };
  }
  function requireMain(path) {
    if (loaded.has(path)) return loaded.get(path).exports;
    const [source, kind] = native.source(path);
    const esm = kind === "esm";
    if (path.endsWith(".json")) {
      const module = { exports: JSON.parse(source) };
      loaded.set(path, module);
      return module.exports;
    }
    if (esm) throw new Error(`${path} is an ES module: load it with import, not require()`);
    const module = { exports: {}, id: path, filename: path };
    loaded.set(path, module);
    const dirname = path.replace(/\/[^/]*$/, "");
    native.compile(path, source).call(module.exports, module.exports, requireFrom(path), module, path, dirname);
    return module.exports;
  }

  function definitions() {
    return JSON.stringify({
      functions: [...functions.keys()],
      jobs: [...jobs.keys()],
      triggers: [...triggers.keys()].map((key) => key.split(":")),
      tools,
    });
  }

  const Parse = {
    Object: ParseObject,
    User: ParseUser,
    Role: ParseRole,
    Session: ParseSession,
    Query: ParseQuery,
    ACL: ParseACL,
    Error: ParseError,
    GeoPoint: ParseGeoPoint,
    File: ParseFile,
    Relation: ParseRelation,
    Config: ParseConfig,
    Cloud,
    applicationId: "parlor",
    serverURL: "",
    initialize() {},
    setServerURL() {},
    _encode: (value) => encode(value, true),
    _decode: decode,
  };
  globalThis.Parse = Parse;
  // Timers live as long as the call that set them: one still pending when its call has
  // answered never fires (there is no event loop between calls).
  const timers = new Map();
  let nextTimer = 1;
  globalThis.setTimeout = (fn, ms, ...args) => {
    const id = nextTimer++;
    timers.set(id, true);
    op("sleep", { ms: Number(ms) || 0 }).then(() => {
      if (timers.delete(id) && typeof fn === "function") fn(...args);
    }, () => timers.delete(id));
    return id;
  };
  globalThis.clearTimeout = (id) => { timers.delete(id); };
  globalThis.setImmediate = (fn, ...args) => globalThis.setTimeout(fn, 0, ...args);
  globalThis.clearImmediate = globalThis.clearTimeout;
  globalThis.require = requireFrom("/");
  globalThis.module = { exports: {} };
  globalThis.process = { env: {} };
  globalThis.__parlor = { dispatch, settle, definitions, requireMain, kinds, requestBase, failure, validate, triggers, jobs, functions, decode, encode, objectOf, op, setLabel: (label) => { currentLabel = label; } };
})();
