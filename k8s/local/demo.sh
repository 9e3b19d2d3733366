#!/usr/bin/env bash
# The Boxscore season demo, the original design end to end: the season's game log is kept as a
# CSV in an S3 bucket (a local S3-compatible store here), replayed into the ingest API one
# simulated day at a time, streamed through Kinesis, transformed and loaded, then reported
# from the warehouse as a leaderboard and a chart.
#
# Expects the stack to be up (`make demo` runs `make up` first) and bin/boxscore built.
# The batting lines are simulated on the real 2024 Dodgers schedule (see demo/README.md).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
readonly BOXSCORE=bin/boxscore
readonly CSV=k8s/local/demo/dodgers-2024-mar-jun.csv
readonly S3_PORT=${S3_PORT:-4569}
readonly S3_ENDPOINT=http://127.0.0.1:$S3_PORT
readonly S3_URI=s3://boxscore-demo/2024/dodgers-2024-mar-jun.csv
readonly DAYS_PER_SECOND=${DEMO_DAYS_PER_SECOND:-4}
readonly DB_URL=postgres://postgres@127.0.0.1:5432/${BOXSCORE_DB:-boxscore}?sslmode=disable
readonly WAIT_SECONDS=${DEMO_WAIT_SECONDS:-60}
readonly NOTE="Simulated batting lines on the real 2024 Dodgers schedule (Retrosheet)"

say() { printf '\ndemo: %s\n' "$*"; }

say "the batting lines are SIMULATED on the real 2024 Dodgers schedule (Retrosheet)."
bash k8s/local/stack.sh start-service --admin-port "$S3_PORT" --ready-path / s3 \
	"$BOXSCORE" s3 serve --addr "127.0.0.1:$S3_PORT" --dir .run/s3

say "upload the season's game log to $S3_URI (local S3-compatible store)"
"$BOXSCORE" s3 put "$CSV" "$S3_URI" --endpoint "$S3_ENDPOINT"

say "replay it into the ingest API at $DAYS_PER_SECOND simulated days per second"
"$BOXSCORE" replay "$S3_URI" --s3-endpoint "$S3_ENDPOINT" --days-per-second "$DAYS_PER_SECOND"

# The replay returns once the gateway acknowledged every event (it is in Kinesis); the
# consumers commit it to the warehouse a moment later.
expected=$(($(wc -l <"$CSV") - 1))
say "wait until the warehouse holds all $expected lines"
deadline=$((SECONDS + WAIT_SECONDS))
while :; do
	landed=$(psql "$DB_URL" -X -tA -c "SELECT count(*) FROM boxscore.fact_batting_game
		WHERE player_id IN (660271, 518692, 605141) AND game_date BETWEEN '2024-03-20' AND '2024-06-30'")
	((landed >= expected)) && break
	if ((SECONDS >= deadline)); then
		echo "demo: only $landed of $expected lines landed within ${WAIT_SECONDS}s; logs are in .run/logs/" >&2
		exit 1
	fi
	sleep 0.5
done

say "the season from the warehouse"
"$BOXSCORE" report --database-url "$DB_URL" --season 2024 --chart out/ops-by-date.svg --note "$NOTE"
say "open out/ops-by-date.svg to see the season; 'make down' stops the stack"
