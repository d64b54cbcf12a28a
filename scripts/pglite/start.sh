#!/usr/bin/env bash
# Starts the test PostgreSQL (scripts/pglite/server.mjs) in the background on a free loopback port.
# Usage: bash scripts/pglite/start.sh PORTFILE   -> writes the port to PORTFILE and the server's pid to PORTFILE.pid.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
portfile="$1"
if [ ! -d "$here/node_modules/@electric-sql/pglite-socket" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
rm -f "$portfile"
node "$here/server.mjs" --port 0 --port-file "$portfile" --watch-stdin false --max-seconds 3600 > "$portfile.out" 2>&1 &
echo $! > "$portfile.pid"
for _ in $(seq 1 120); do
  [ -s "$portfile" ] && exit 0
  kill -0 "$(cat "$portfile.pid")" 2>/dev/null || { cat "$portfile.out" >&2; echo "the PGlite server exited" >&2; exit 1; }
  sleep 0.5
done
echo "the PGlite server did not start within 60 s" >&2
cat "$portfile.out" >&2
exit 1
