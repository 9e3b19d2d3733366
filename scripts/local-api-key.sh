#!/usr/bin/env bash
# The local stack's API key, made once: `make up` calls this before it starts the gateway
# with the keys file. When .run/api-key is missing (or the keys file no longer holds its
# hash), a key for producer `local` with scopes ingest and retract is made with
# `boxscore apikey new`: its hash goes into .run/api-keys.yaml and the key into .run/api-key,
# both mode 0600. An existing key is kept, so exported copies of it stay valid.
#
# Usage: scripts/local-api-key.sh BOXSCORE_BINARY
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly BOXSCORE=${1:?usage: $0 BOXSCORE_BINARY}
readonly KEY_FILE=.run/api-key
readonly KEYS_FILE=.run/api-keys.yaml

if [[ -s $KEY_FILE && -f $KEYS_FILE ]]; then
	if hash=$("$BOXSCORE" apikey hash <"$KEY_FILE") && grep -qF "$hash" "$KEYS_FILE"; then
		exit 0
	fi
	echo "local-api-key: $KEYS_FILE does not hold the hash of $KEY_FILE; making a new local key" >&2
fi
mkdir -p .run
# A stale key file (its hash lost) would make `apikey new --key-out` refuse to overwrite it.
rm -f "$KEY_FILE"
# apikey new's own advice goes to stderr; `make up` prints the local version of it.
"$BOXSCORE" apikey new --producer local --scopes ingest,retract \
	--keys-file "$KEYS_FILE" --key-out "$KEY_FILE" 2>/dev/null
echo "local-api-key: made an API key for producer 'local' (scopes ingest, retract) in $KEY_FILE (mode 0600)" >&2
