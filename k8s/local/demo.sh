#!/usr/bin/env bash
# The Boxscore demo: with the local stack up (`make up`), POST the first games of the demo
# season to the ingest API, wait until the warehouse holds them, and print what landed.
# The batting lines are simulated on the real 2024 Dodgers schedule (see demo/README.md).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly EVENTS=$REPO_ROOT/k8s/local/demo/first-games-2024.ndjson
readonly GATEWAY=${BOXSCORE_GATEWAY_URL:-http://127.0.0.1:8080}
readonly DB_URL=postgres://postgres@127.0.0.1:5432/${BOXSCORE_DB:-boxscore}?sslmode=disable
readonly SCHEMA=${BOXSCORE_WAREHOUSE_SCHEMA:-boxscore}
readonly WAIT_SECONDS=${DEMO_WAIT_SECONDS:-60}

psql_q() { psql "$DB_URL" -v ON_ERROR_STOP=1 -X -q "$@"; }

expected=$(grep -c . "$EVENTS")
echo "demo: the batting lines are simulated on the real 2024 Dodgers schedule (Retrosheet)."
echo "demo: POST $expected events to $GATEWAY/v1/stats"
status=$(curl -sS -o /tmp/boxscore-demo-response.json -w '%{http_code}' \
	-H 'Content-Type: application/x-ndjson' --data-binary @"$EVENTS" "$GATEWAY/v1/stats")
if [[ $status != 202 ]]; then
	echo "demo: the gateway answered $status:" >&2
	cat /tmp/boxscore-demo-response.json >&2
	exit 1
fi
echo "demo: 202 Accepted — every event is in the stream (shard and sequence number per event in the response)"

# The event ids are fixed, so running the demo again changes nothing: wait until every one of
# them is in the warehouse.
ids=$(grep -o '"eventId":"[^"]*"' "$EVENTS" | cut -d'"' -f4 | sed "s/.*/'&'/" | paste -sd, -)
deadline=$((SECONDS + WAIT_SECONDS))
while :; do
	landed=$(psql_q -tA -c "SELECT count(*) FROM $SCHEMA.fact_batting_game WHERE event_id IN ($ids)")
	[[ $landed -ge $expected ]] && break
	if ((SECONDS >= deadline)); then
		echo "demo: only $landed of $expected rows landed within ${WAIT_SECONDS}s; see .run/logs/" >&2
		exit 1
	fi
	sleep 0.5
done
echo "demo: all $expected rows are in the warehouse"
echo
psql_q -c "
SELECT p.name AS player, f.game_date, f.game_number AS g, f.opponent AS opp,
       CASE WHEN f.home THEN 'home' ELSE 'away' END AS site,
       f.plate_appearances AS pa, f.at_bats AS ab, f.runs AS r, f.hits AS h, f.doubles AS \"2b\",
       f.triples AS \"3b\", f.home_runs AS hr, f.rbi, f.base_on_balls AS bb, f.strike_outs AS so,
       f.total_bases AS tb
FROM $SCHEMA.fact_batting_game f JOIN $SCHEMA.dim_player p USING (player_id)
WHERE f.event_id IN ($ids)
ORDER BY f.game_date, f.game_number, p.name"
psql_q -c "
SELECT p.name AS player, count(*) AS g, sum(f.at_bats) AS ab, sum(f.hits) AS h, sum(f.home_runs) AS hr,
       sum(f.rbi) AS rbi, to_char(sum(f.hits)::numeric / nullif(sum(f.at_bats), 0), 'FM0.000') AS avg
FROM $SCHEMA.fact_batting_game f JOIN $SCHEMA.dim_player p USING (player_id)
WHERE f.event_id IN ($ids)
GROUP BY p.name ORDER BY p.name"
echo "demo: stop the stack with 'make down'"
