// Jasmine helper that replaces Parse-SDK-JS's integration/test/helper.js: the same globals,
// hooks and configuration, served by Parlor instead of an in-process Parse Server.
//
// - The server is `parlor serve` on port 1337, mount path /parse, app id `integration`, master
//   key `notsosecret`, LiveQuery for TestObject and DiffObject, client class creation and file
//   uploads without a user allowed, idempotency on the helper's paths, no chat template: the
//   options of the upstream helper's `defaultConfiguration` that Parlor has.
// - `TestUtils.destroyAllDataPermanently` (after each spec) becomes a restart on a fresh
//   database, which leaves nothing behind either.
// - `reconfigureServer(changes)` restarts the server with the changes Parlor can express
//   (allowCustomObjectId); others are ignored, so the specs that depend on them fail.
// - The upstream helper's custom auth adapter (`myAuth`, its `CustomAuth.js`) is loaded with
//   `--auth-adapters`; its facebook and twitter adapters are not (facebook's checks the token
//   with Facebook over the network; the twitter specs spy on the in-process adapter object).
//   Push adapters are not loaded either (Cloud Code, `cloud/main.js`, is).

jasmine.DEFAULT_TIMEOUT_INTERVAL = 20000;

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const dns = require('dns');
const Parse = require('parse/node');

if (dns.setDefaultResultOrder) {
  dns.setDefaultResultOrder('ipv4first');
}

const port = 1337;
const serverURL = `http://localhost:${port}/parse`;
const bin = process.env.PARLOR_BIN;
const database = process.env.PARLOR_SUITE_DATABASE; // a PostgreSQL URL, or unset for SQLite

const defaultArgs = [
  '--app-id', 'integration',
  '--master-key', 'notsosecret',
  '--mount-path', '/parse',
  '--live-query-classes', 'TestObject,DiffObject',
  '--allow-client-class-creation', 'true',
  '--idempotency-paths', 'functions/CloudFunctionIdempotency,jobs/CloudJob1,classes/IdempotentTest',
  '--idempotency-ttl', '120',
  '--file-upload-public', 'true',
  '--template', 'none',
  '--auth-adapters', `myAuth=${path.join(__dirname, 'CustomAuth.js')}`,
];

// The suite's own Cloud Code, as upstream's helper gives Parse Server, unless a spec passes
// its own (`reconfigureServer({cloud({Cloud}) {…}})`): that function is written to a file
// and run with `Parse.Cloud` as upstream's Parse Server does.
let cloudFile = path.join(__dirname, 'cloud', 'main.js');

function cloudArgs(cloud) {
  if (typeof cloud !== 'function') return ['--cloud', cloudFile];
  const source = cloud.toString();
  const callable = /^(async\s+)?(function\b|\(|[A-Za-z_$][\w$]*\s*=>)/.test(source)
    ? `(${source})`
    : `({ ${source} })[${JSON.stringify(cloud.name)}]`;
  const file = path.join(os.tmpdir(), `parlor-parse-sdk-cloud-${process.pid}.js`);
  fs.writeFileSync(file, `${callable}({ Cloud: Parse.Cloud });\n`);
  return ['--cloud', file];
}

let server = null;
let didChangeConfiguration = false;
let generation = 0;

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function healthy() {
  try {
    const res = await fetch(`${serverURL}/health`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

// The database the server runs on: kept across `reconfigureServer` (a restart, as upstream's
// helper keeps its database), replaced by `destroyAllDataPermanently` after each spec.
let store = null;

function freshStore() {
  if (store) fs.rmSync(store.dir, { recursive: true, force: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parlor-parse-sdk-'));
  generation += 1;
  const db = database
    ? `${database}${database.includes('?') ? '&' : '?'}schema=parse_sdk_suite_${process.pid}_${generation}`
    : `sqlite://${path.join(dir, 'parlor.db')}`;
  store = { dir, db };
}

async function stopServer() {
  if (!server) return;
  const { child } = server;
  server = null;
  if (child.exitCode === null) {
    const exited = new Promise(resolve => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function startServer(extraArgs) {
  if (!store) freshStore();
  const { dir, db } = store;
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--database', db, ...defaultArgs, ...extraArgs];
  if (!extraArgs.includes('--cloud')) args.push(...cloudArgs(null));
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'ignore', process.env.PARLOR_SUITE_SERVER_LOG ? 'inherit' : 'ignore'] });
  server = { child, dir };
  const deadline = Date.now() + 20000;
  while (!(await healthy())) {
    if (child.exitCode !== null) throw new Error(`parlor exited at start: ${bin} ${args.join(' ')}`);
    if (Date.now() > deadline) throw new Error('parlor did not answer /health within 20 s');
    await sleep(50);
  }
}

// What Parlor can express of Parse Server's options.
function argsFor(changes) {
  const args = [];
  if (changes.allowCustomObjectId) args.push('--allow-custom-object-id', 'true');
  if (typeof changes.cloud === 'function') args.push(...cloudArgs(changes.cloud));
  return args;
}

const reconfigureServer = async (changedConfiguration = {}) => {
  await stopServer();
  didChangeConfiguration = Object.keys(changedConfiguration).length !== 0;
  await startServer(argsFor(changedConfiguration));
  // The few specs that use the returned object only shut it down.
  return {
    config: { state: 'ok', ...changedConfiguration },
    handleShutdown: async () => {},
    server: { close: callback => stopServer().then(() => callback && callback()) },
  };
};

global.DiffObject = Parse.Object.extend('DiffObject');
global.Item = Parse.Object.extend('Item');
global.Parent = Parse.Object.extend('Parent');
global.Child = Parse.Object.extend('Child');
global.Container = Parse.Object.extend('Container');
global.TestPoint = Parse.Object.extend('TestPoint');
global.TestObject = Parse.Object.extend('TestObject');
// A fresh database, with the default configuration.
const destroyAllDataPermanently = async () => {
  await stopServer();
  freshStore();
  didChangeConfiguration = false;
  await startServer([]);
};

global.reconfigureServer = reconfigureServer;
global.destroyAllDataPermanently = destroyAllDataPermanently;

beforeAll(async () => {
  await reconfigureServer();
  Parse.initialize('integration');
  Parse.CoreManager.set('SERVER_URL', serverURL);
  Parse.CoreManager.set('MASTER_KEY', 'notsosecret');
});

afterEach(async () => {
  try {
    await Parse.User.logOut();
  } catch {
    // A spec may leave a session the server no longer knows.
  }
  Parse.Storage._clear();
  await destroyAllDataPermanently();
});

afterAll(async () => {
  await stopServer();
  if (store) fs.rmSync(store.dir, { recursive: true, force: true });
});

// The upstream helper's export (a Twitter app's test credentials, only meaningful with its
// auth adapter, which Parlor does not have).
module.exports = { twitterAuthData: {} };
