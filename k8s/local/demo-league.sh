#!/usr/bin/env bash
# The Boxscore league demo: a month of a simulated major-league season (30 teams, about 450
# batters, 10,000 batting lines with official scoring changes), generated without the
# network by `boxscore season generate`, kept as a CSV in an S3 bucket (the local
# S3-compatible store), replayed into the ingest API day by day, streamed through Kinesis,
# transformed and loaded, then reported from the warehouse: the league leaderboards (OPS for
# qualified batters, home runs) and the chart of the OPS leaders.
#
# Expects the stack to be up (`make demo-league` runs `make up` first) and bin/boxscore
# built. The league is the 2025 season, so it never mixes with `make demo`'s 2024 Dodgers.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
readonly BOXSCORE=bin/boxscore
readonly SEASON=${LEAGUE_SEASON:-2025}
readonly SEED=${LEAGUE_SEED:-1}
readonly FROM=${LEAGUE_FROM:-$SEASON-05-01}
readonly TO=${LEAGUE_TO:-$SEASON-05-31}
readonly CSV=.run/league/league-$SEASON-seed$SEED-$FROM-$TO.csv
readonly S3_PORT=${S3_PORT:-4569}
readonly S3_ENDPOINT=http://127.0.0.1:$S3_PORT
readonly S3_URI=s3://boxscore-demo/league/$(basename "$CSV")
readonly DAYS_PER_SECOND=${DEMO_DAYS_PER_SECOND:-4}
readonly DB_URL=postgres://postgres@127.0.0.1:5432/${BOXSCORE_DB:-boxscore}?sslmode=disable
readonly WAIT_SECONDS=${DEMO_WAIT_SECONDS:-180}
readonly NOTE="Simulated league: boxscore season generate --seed $SEED (made-up players, real teams)"

say() { printf '\ndemo-league: %s\n' "$*"; }

say "the league is SIMULATED: made-up players on the 30 real teams and a generated schedule."
bash k8s/local/stack.sh start-service --admin-port "$S3_PORT" --ready-path / s3 \
	"$BOXSCORE" s3 serve --addr "127.0.0.1:$S3_PORT" --dir .run/s3

say "generate $FROM to $TO of the $SEASON season (seed $SEED) into $CSV"
mkdir -p "$(dirname "$CSV")"
"$BOXSCORE" season generate --seed "$SEED" --season "$SEASON" --from "$FROM" --to "$TO" --out "$CSV"

say "upload it to $S3_URI (local S3-compatible store)"
"$BOXSCORE" s3 put "$CSV" "$S3_URI" --endpoint "$S3_ENDPOINT"

say "replay it into the ingest API at $DAYS_PER_SECOND simulated days per second"
"$BOXSCORE" replay "$S3_URI" --s3-endpoint "$S3_ENDPOINT" --days-per-second "$DAYS_PER_SECOND"

# The replay returns once the gateway acknowledged every event (it is in Kinesis); the
# consumers commit it to the warehouse a little later. A scoring change replaces its line
# (a higher version), so the warehouse is complete when it holds every (player, game) line
# of the file at its highest version.
read -r expected versions < <(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{ k = $col["player_id"] "/" $col["game_id"]; v = $col["version"] + 0; if (v > best[k]) best[k] = v }
	END { n = 0; s = 0; for (k in best) { n++; s += best[k] } print n, s }' "$CSV")
say "wait until the warehouse holds all $expected lines at their latest version"
deadline=$((SECONDS + WAIT_SECONDS))
while :; do
	read -r landed landed_versions < <(psql "$DB_URL" -X -tA -F ' ' -c "SELECT count(*), COALESCE(SUM(version), 0)
		FROM boxscore.fact_batting_game WHERE season = $SEASON AND game_date BETWEEN '$FROM' AND '$TO'")
	((landed >= expected && landed_versions >= versions)) && break
	if ((SECONDS >= deadline)); then
		echo "demo-league: only $landed of $expected lines landed within ${WAIT_SECONDS}s; logs are in .run/logs/" >&2
		exit 1
	fi
	sleep 1
done

say "the league from the warehouse: OPS leaders (qualified: 3.1 plate appearances per team game)"
"$BOXSCORE" report --database-url "$DB_URL" --season "$SEASON" --from "$FROM" --to "$TO" \
	--sort ops --limit 20 --chart out/league-ops-by-date.svg --note "$NOTE"
say "home run leaders"
"$BOXSCORE" report --database-url "$DB_URL" --season "$SEASON" --from "$FROM" --to "$TO" \
	--sort hr --limit 10 --chart out/league-hr-leaders-ops.svg --note "$NOTE"
say "open out/league-ops-by-date.svg for the OPS leaders' month; 'make down' stops the stack"
