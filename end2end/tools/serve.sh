#!/usr/bin/env bash
# Starts `clarion serve` for the Playwright run. A test can ask for a restart (same data
# dir, optionally another VAPID key) by writing to $CLARION_E2E_DATA_DIR/control: the
# loop below stops the server and starts it again.
set -u
control="$CLARION_DATA_DIR/../control-$(basename "$CLARION_DATA_DIR")"
rm -f "$control"
while true; do
  key_env=()
  if [ -f "$control" ]; then
    key="$(cat "$control")"
    rm -f "$control"
    [ -n "$key" ] && key_env=(CLARION_VAPID_PRIVATE_KEY="$key")
  fi
  env "${key_env[@]}" "$CLARION_BIN" serve &
  pid=$!
  trap 'kill $pid 2>/dev/null; exit 0' TERM INT
  while kill -0 "$pid" 2>/dev/null && [ ! -f "$control" ]; do sleep 0.2; done
  [ -f "$control" ] || exit 1
  kill "$pid"; wait "$pid" 2>/dev/null
done
