// A real PostgreSQL (PGlite, a WASM build of Postgres) with the pgvector extension, serving the Postgres wire protocol
// on a loopback port, for MedVlp's retrieval tests. Usage:
//   node scripts/pglite/server.mjs --port 0 [--data DIR] [--port-file FILE] [--max-seconds 1800]
// Prints "listening 127.0.0.1:PORT" once ready (and writes PORT to --port-file). Stops on SIGINT/SIGTERM, when stdin
// closes (so it never outlives the test script that started it), or after --max-seconds.
import { writeFileSync, renameSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const port = Number(args.port ?? 0);
const maxSeconds = Number(args['max-seconds'] ?? 1800);
const dataDir = args.data ? `file://${args.data}` : 'memory://';

const db = await PGlite.create(dataDir, { extensions: { vector } });
await db.exec('CREATE EXTENSION IF NOT EXISTS vector;');
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 8 });
await server.start();
const actual = server.getServerConn().split(':').pop();
if (args['port-file']) {
  writeFileSync(`${args['port-file']}.tmp`, `${actual}\n`);
  renameSync(`${args['port-file']}.tmp`, args['port-file']);
}
console.log(`listening 127.0.0.1:${actual}`);

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
    await db.close(); // flushes a file-backed database
  } finally {
    process.exit(code);
  }
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
if (args['watch-stdin'] !== 'false') {
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.resume();
}
setTimeout(() => stop(0), maxSeconds * 1000).unref();
