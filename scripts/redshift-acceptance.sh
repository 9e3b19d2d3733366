#!/usr/bin/env bash
# Acceptance checks of the loader against a real Amazon Redshift cluster or Serverless
# workgroup: what the tests on PostgreSQL 15 cannot show (docs/redshift.md, "What needs a
# real cluster"). It
#   1. builds the binaries and migrates a fresh schema on Redshift with `loader migrate`
#      (twice: the second run must change nothing);
#   2. starts the local pipeline (kinesalite, the machine's PostgreSQL for leases, the four
#      services) with the loader writing Redshift: S3 staging, COPY, MERGE;
#   3. replays the demo season through the ingest API, kills the shard consumer with
#      SIGKILL halfway and restarts it (records after its last checkpoint are delivered
#      again), then replays the whole season a second time (every event delivered again);
#   4. checks with SQL on Redshift: every line once, no duplicate (player, game), no dead
#      letter, checkpoints written, the views answer, `boxscore report` runs, and nothing
#      left under the staging prefix;
#   5. prints a report, stops the stack and drops the schema (KEEP_SCHEMA=1 keeps it).
#
# Usage: REDSHIFT_URL=... STAGING_URI=... COPY_ROLE_ARN=... AWS_REGION=... scripts/redshift-acceptance.sh
#
# Environment:
#   REDSHIFT_URL         postgres://user:password@host:5439/dev?sslmode=verify-full; with
#                        REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP, without user and password
#   STAGING_URI          s3://bucket/prefix/ the AWS credentials of this shell may write
#   COPY_ROLE_ARN        the role associated with the cluster or namespace, which may read it
#   AWS_REGION           region of the cluster or workgroup and of the bucket
#   REDSHIFT_CLUSTER_ID  optional: temporary IAM credentials (GetClusterCredentialsWithIAM)
#   REDSHIFT_WORKGROUP   optional: the same on Serverless (GetCredentials)
#   ACCEPTANCE_SCHEMA    schema to create (default boxscore_acc_<unix time>)
#   BATCH_WINDOW         the loader's --redshift-batch-window (default 2s)
#   DAYS_PER_SECOND      replay pace (default 8)
#   WAIT_SECONDS         how long the lines may take to land (default 300)
#   KEEP_SCHEMA          1: leave the schema for inspection
#
# Needs: go, node (kinesalite), psql, the machine's PostgreSQL as `make up` uses it, the aws
# CLI (the staging check; temporary credentials for psql). No local stack may be running
# (`make down` first): this one is started and stopped here.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
cd "$REPO_ROOT"

readonly REDSHIFT_URL=${REDSHIFT_URL:?set REDSHIFT_URL (postgres://...:5439/dev?sslmode=verify-full)}
readonly STAGING_URI=${STAGING_URI:?set STAGING_URI (s3://bucket/prefix/)}
readonly COPY_ROLE_ARN=${COPY_ROLE_ARN:?set COPY_ROLE_ARN (arn:aws:iam::ACCOUNT:role/NAME)}
: "${AWS_REGION:?set AWS_REGION}"
export AWS_REGION
readonly CLUSTER_ID=${REDSHIFT_CLUSTER_ID:-}
readonly WORKGROUP=${REDSHIFT_WORKGROUP:-}
SCHEMA=${ACCEPTANCE_SCHEMA:-boxscore_acc_$(date +%s)}
readonly SCHEMA
readonly BATCH_WINDOW=${BATCH_WINDOW:-2s}
readonly DAYS_PER_SECOND=${DAYS_PER_SECOND:-8}
readonly WAIT_SECONDS=${WAIT_SECONDS:-300}
readonly KEEP_SCHEMA=${KEEP_SCHEMA:-0}

readonly BIN=$REPO_ROOT/bin
readonly STACK=k8s/local/stack.sh
readonly CSV=k8s/local/demo/dodgers-2024-mar-jun.csv
readonly LEASE_URL="postgres://postgres@127.0.0.1:5432/${BOXSCORE_DB:-boxscore}?sslmode=disable"

[[ $SCHEMA =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "ACCEPTANCE_SCHEMA must be a lower-case identifier" >&2; exit 2; }
[[ $STAGING_URI == s3://?*/ ]] || { echo "STAGING_URI must look like s3://bucket/prefix/" >&2; exit 2; }
if [[ -n $CLUSTER_ID && -n $WORKGROUP ]]; then
	echo "set REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP, not both" >&2
	exit 2
fi

say() { printf '\nacceptance: %s\n' "$*" >&2; }

failures=()
check() { # check NAME GOT WANT
	if [[ $2 == "$3" ]]; then
		printf '  PASS  %-44s %s\n' "$1" "$2"
	else
		printf '  FAIL  %-44s got %s, want %s\n' "$1" "$2" "$3"
		failures+=("$1")
	fi
}

# The database name of the URL, for the credentials APIs.
db_name=${REDSHIFT_URL##*/}
db_name=${db_name%%\?*}
readonly db_name

# Temporary credentials for psql and `boxscore report` (the loader asks for its own).
if [[ -n $CLUSTER_ID ]]; then
	read -r PGUSER PGPASSWORD < <(aws redshift get-cluster-credentials-with-iam \
		--cluster-identifier "$CLUSTER_ID" --db-name "$db_name" --query '[DbUser,DbPassword]' --output text)
	export PGUSER PGPASSWORD
elif [[ -n $WORKGROUP ]]; then
	read -r PGUSER PGPASSWORD < <(aws redshift-serverless get-credentials \
		--workgroup-name "$WORKGROUP" --db-name "$db_name" --query '[dbUser,dbPassword]' --output text)
	export PGUSER PGPASSWORD
fi

sql() { psql "$REDSHIFT_URL" -X -v ON_ERROR_STOP=1 -tA -c "$1"; }

# The loader's settings, for `loader migrate` and the service alike.
export BOXSCORE_WAREHOUSE_ENGINE=redshift
export BOXSCORE_WAREHOUSE_SCHEMA=$SCHEMA
export BOXSCORE_REDSHIFT_STAGING_URI=$STAGING_URI
export BOXSCORE_REDSHIFT_COPY_ROLE_ARN=$COPY_ROLE_ARN
export BOXSCORE_REDSHIFT_BATCH_WINDOW=$BATCH_WINDOW
if [[ -n $CLUSTER_ID || -n $WORKGROUP ]]; then
	export BOXSCORE_REDSHIFT_IAM=true
	[[ -n $CLUSTER_ID ]] && export BOXSCORE_REDSHIFT_CLUSTER_ID=$CLUSTER_ID
	[[ -n $WORKGROUP ]] && export BOXSCORE_REDSHIFT_WORKGROUP=$WORKGROUP
fi

cleanup() {
	local status=$?
	say "stopping the local stack"
	bash "$STACK" stop || true
	if [[ $KEEP_SCHEMA == 1 ]]; then
		say "schema $SCHEMA kept (KEEP_SCHEMA=1)"
	else
		sql "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null || say "could not drop schema $SCHEMA"
	fi
	exit "$status"
}

if curl -fsS -o /dev/null http://127.0.0.1:9103/readyz 2>/dev/null; then
	echo "a local stack is running (a loader answers on 127.0.0.1:9103): 'make down' first" >&2
	exit 2
fi

say "build"
make build >/dev/null

say "migrate schema $SCHEMA on Redshift (twice: the second run must be a no-op)"
trap cleanup EXIT
BOXSCORE_DATABASE_URL=$REDSHIFT_URL "$BIN/loader" migrate
BOXSCORE_DATABASE_URL=$REDSHIFT_URL "$BIN/loader" migrate
tables=$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = '$SCHEMA' AND tablename IN ('fact_batting_game', 'dim_player', 'dead_letter', 'shard_checkpoint', 'stream_gap', 'batting_game_retraction')")
check "tables created" "$tables" 6

say "start the local pipeline, the loader writing Redshift"
bash "$STACK" deps
bash scripts/local-api-key.sh "$BIN/boxscore"
export BOXSCORE_KINESIS_ENDPOINT=http://127.0.0.1:${KINESIS_PORT:-4567}
BOXSCORE_DATABASE_URL=$REDSHIFT_URL BOXSCORE_MIGRATE=false \
	bash "$STACK" start-service --admin-port 9103 loader "$BIN/loader"
# Everything else stays local; the consumer's leases in the machine's PostgreSQL.
unset BOXSCORE_WAREHOUSE_ENGINE BOXSCORE_WAREHOUSE_SCHEMA BOXSCORE_REDSHIFT_STAGING_URI \
	BOXSCORE_REDSHIFT_COPY_ROLE_ARN BOXSCORE_REDSHIFT_BATCH_WINDOW BOXSCORE_REDSHIFT_IAM \
	BOXSCORE_REDSHIFT_CLUSTER_ID BOXSCORE_REDSHIFT_WORKGROUP
export BOXSCORE_LEASE_DATABASE_URL=$LEASE_URL BOXSCORE_LEASE_SCHEMA=${SCHEMA}_lease
# A Load waits for the window, a COPY and the MERGE: the chart's Redshift deadline.
export BOXSCORE_RPC_TIMEOUT=60s BOXSCORE_SHUTDOWN_TIMEOUT=90s
start_consumer() { bash "$STACK" start-service --admin-port 9104 shard-consumer "$BIN/shard-consumer"; }
bash "$STACK" start-service --admin-port 9102 transformer "$BIN/transformer"
start_consumer
BOXSCORE_API_KEYS_FILE=$REPO_ROOT/.run/api-keys.yaml \
	bash "$STACK" start-service --admin-port 9101 ingest-gateway "$BIN/ingest-gateway"
BOXSCORE_API_KEY=$(cat .run/api-key)
export BOXSCORE_API_KEY

expected=$(($(wc -l <"$CSV") - 1))
landed() { sql "SELECT count(*) FROM $SCHEMA.fact_batting_game"; }
wait_for_lines() {
	local deadline=$((SECONDS + WAIT_SECONDS)) n
	while :; do
		n=$(landed)
		((n >= expected)) && return 0
		if ((SECONDS >= deadline)); then
			say "only $n of $expected lines landed within ${WAIT_SECONDS}s; logs in .run/logs/"
			return 1
		fi
		sleep 2
	done
}

say "replay the season ($expected lines); SIGKILL the shard consumer halfway and restart it"
"$BIN/boxscore" replay "$CSV" --days-per-second "$DAYS_PER_SECOND" &
replay_pid=$!
sleep $((100 / DAYS_PER_SECOND / 2 + 1)) # about half of the season's 100 days
consumer_pid=$(cat .run/pids/shard-consumer.pid)
kill -KILL "$consumer_pid"
sleep 1
start_consumer
wait "$replay_pid"
wait_for_lines || true
check "lines after a consumer crash" "$(landed)" "$expected"

say "replay the whole season again: every event delivered a second time"
"$BIN/boxscore" replay "$CSV" --days-per-second 50
# The second delivery changes nothing: wait until the consumer's checkpoints pass it.
sleep $((WAIT_SECONDS < 60 ? WAIT_SECONDS : 60))

say "checks on Redshift"
check "lines (every one once)" "$(landed)" "$expected"
check "duplicate (player, game) keys" "$(sql "SELECT count(*) FROM (SELECT player_id, game_id FROM $SCHEMA.fact_batting_game GROUP BY player_id, game_id HAVING count(*) > 1) d")" 0
check "dead letters" "$(sql "SELECT count(*) FROM $SCHEMA.dead_letter")" 0
checkpoints=$(sql "SELECT count(*) FROM $SCHEMA.shard_checkpoint")
check "shards with a checkpoint (>0)" "$((checkpoints > 0))" 1
check "players in dim_player" "$(sql "SELECT count(*) FROM $SCHEMA.dim_player")" "$(sql "SELECT count(DISTINCT player_id) FROM $SCHEMA.fact_batting_game")"
check "batting_season rows (one per player)" "$(sql "SELECT count(*) FROM $SCHEMA.batting_season WHERE season = 2024")" "$(sql "SELECT count(DISTINCT player_id) FROM $SCHEMA.fact_batting_game")"
if "$BIN/boxscore" report --database-url "$REDSHIFT_URL" --warehouse-engine redshift --warehouse-schema "$SCHEMA" \
	--season 2024 --chart "$REPO_ROOT/out/redshift-acceptance.svg" >"$REPO_ROOT/.run/redshift-report.txt"; then
	check "boxscore report" ok ok
else
	check "boxscore report" failed ok
fi
if command -v aws >/dev/null; then
	left=$(aws s3 ls "$STAGING_URI" --recursive | wc -l)
	check "objects left under the staging prefix" "$left" 0
fi

say "report"
credentials="the URL's user and password"
[[ -n $CLUSTER_ID ]] && credentials="IAM, cluster $CLUSTER_ID"
[[ -n $WORKGROUP ]] && credentials="IAM, workgroup $WORKGROUP"
echo "  schema $SCHEMA, staging $STAGING_URI, window $BATCH_WINDOW, credentials: $credentials"
echo "  the loader's log: .run/logs/loader.log; the report: .run/redshift-report.txt"
if ((${#failures[@]} > 0)); then
	echo "  FAILED: ${failures[*]}"
	exit 1
fi
echo "  all checks passed"
