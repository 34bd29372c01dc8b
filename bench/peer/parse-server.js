// Launcher for Parse Server (the peer) used by bench/compare. Parse Server itself is installed
// outside the repo with npm (default /opt/parse-peer, see bench/README.md); same settings as the
// reference runs in shared/peer-bench: Postgres, LiveQuery on the same port, error-level logs.
// Env: PARSE_PEER_DIR, DATABASE_URI, PORT, HOST, APP_ID, MASTER_KEY, CLOUD (a cloud/main.js,
// absolute path: the same file Parlor runs with --cloud).
'use strict';
const path = require('path');
const { createRequire } = require('module');
const peerDir = process.env.PARSE_PEER_DIR || '/opt/parse-peer';
const req = createRequire(path.join(peerDir, 'package.json'));
const { ParseServer } = req('parse-server');

const port = Number(process.env.PORT || 1337);
const host = process.env.HOST || '127.0.0.1';
const serverURL = `http://${host}:${port}/parse`;

ParseServer.startApp({
  appId: process.env.APP_ID || 'bench',
  masterKey: process.env.MASTER_KEY || 'bench-master',
  maintenanceKey: 'bench-maintenance',
  databaseURI: process.env.DATABASE_URI || 'postgres://parse:parse@127.0.0.1:5432/parse_bench',
  serverURL,
  publicServerURL: serverURL,
  mountPath: '/parse',
  port,
  host,
  startLiveQueryServer: true,
  liveQuery: { classNames: ['Message', 'ChatSession'] },
  liveQueryServerOptions: { logLevel: 'ERROR' },
  logLevel: 'error',
  logsFolder: null,
  silent: true,
  verbose: false,
  allowClientClassCreation: false,
  // Its GraphQL API beside /parse, for the graphql_history scenario.
  mountGraphQL: true,
  graphQLPath: '/graphql',
  ...(process.env.CLOUD ? { cloud: process.env.CLOUD } : {}),
}).then(
  () => process.stdout.write(`parse-server ${req('parse-server/package.json').version} on ${serverURL} pid=${process.pid}\n`),
  (e) => {
    console.error('failed to start parse-server', e);
    process.exit(1);
  },
);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
