#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 and lets user
# postgres in over TCP without a password (trust), which is what the tests
# and the local stack expect. Idempotent and silent when all is well.
#
# In order, only as far as needed:
#   1. install PostgreSQL from Debian's packages if it is absent;
#   2. create a cluster on port 5432 if there is none;
#   3. start the cluster if it is not running;
#   4. trust user postgres from 127.0.0.1/32 and ::1/128 if a password is
#      asked for (lines added at the top of pg_hba.conf, nothing removed);
#   5. wait until it accepts connections.
# It never stops, restarts or removes a running server.
#
# ENSURE_POSTGRES_PORT and ENSURE_POSTGRES_CLUSTER (default 5432 and main)
# exist to exercise the create/trust paths on a scratch cluster without
# touching the machine's server.
set -euo pipefail

readonly PG_HOST=127.0.0.1
readonly PG_PORT=${ENSURE_POSTGRES_PORT:-5432}
readonly PG_CLUSTER_NAME=${ENSURE_POSTGRES_CLUSTER:-main}
readonly READY_TIMEOUT_SECONDS=30
# Marks the pg_hba.conf lines this script adds, so they are added once.
readonly HBA_MARKER='# boxscore: trust local TCP for user postgres (.ci/ensure-postgres.sh)'

log() { echo "ensure-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

# as_root runs a command as root: directly when we are root (CI and the
# dev machines), through sudo otherwise.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

is_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

# trusts_postgres is true when user postgres gets in over TCP without a
# password (-w: never prompt; PGPASSWORD cleared so it cannot help).
trusts_postgres() {
	PGPASSWORD='' PGPASSFILE=/dev/null psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
		-Atc 'SELECT 1' >/dev/null 2>&1
}

wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
	until is_ready; do
		((SECONDS < deadline)) || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT after ${READY_TIMEOUT_SECONDS}s"
		sleep 0.2
	done
}

# The fast path: nothing to do, say nothing.
if command -v pg_isready >/dev/null && is_ready && trusts_postgres; then
	exit 0
fi

# 1. Install. pg_ctlcluster and friends come with Debian's postgresql-common.
if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_isready >/dev/null ||
	! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
	log "PostgreSQL is not installed: installing it from Debian's packages"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# 2. Find the cluster on our port (pg_lsclusters -h: "ver name port status
# owner datadir logfile"), creating one if there is none. Debian's package
# normally creates "main" on 5432 when it is installed.
find_cluster() { pg_lsclusters -h | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }'; }
cluster=$(find_cluster)
if [[ -z $cluster ]]; then
	newest_version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
	[[ -n $newest_version ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
	if [[ -d /etc/postgresql/$newest_version/$PG_CLUSTER_NAME ]]; then
		die "cluster $newest_version/$PG_CLUSTER_NAME exists but not on port $PG_PORT; see pg_lsclusters"
	fi
	log "creating cluster $newest_version/$PG_CLUSTER_NAME on port $PG_PORT"
	as_root pg_createcluster --port "$PG_PORT" "$newest_version" "$PG_CLUSTER_NAME" >/dev/null
	cluster=$(find_cluster)
	[[ -n $cluster ]] || die "pg_createcluster did not create a cluster on port $PG_PORT"
fi
read -r pg_version pg_cluster pg_status <<<"$cluster"

# 3. Start it. --skip-systemctl-redirect: there is no systemd on these
# machines (containers), so start the server directly.
if ! is_ready; then
	if [[ $pg_status == online* ]]; then
		die "cluster $pg_version/$pg_cluster is running but does not answer on $PG_HOST:$PG_PORT; check listen_addresses"
	fi
	log "starting cluster $pg_version/$pg_cluster"
	as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" start
	wait_ready
fi

# 4. Trust. pg_hba.conf is first match wins, so our lines go on top; they
# match only user postgres from the loopback addresses.
if ! trusts_postgres; then
	hba_file=$(pg_conftool -s "$pg_version" "$pg_cluster" show hba_file 2>/dev/null ||
		echo "/etc/postgresql/$pg_version/$pg_cluster/pg_hba.conf")
	[[ -f $hba_file ]] || die "cannot find pg_hba.conf of cluster $pg_version/$pg_cluster (looked at $hba_file)"
	if ! as_root grep -qxF "$HBA_MARKER" "$hba_file"; then
		log "trusting user postgres from 127.0.0.1 and ::1 in $hba_file"
		hba_tmp=$(mktemp)
		trap 'rm -f "$hba_tmp"' EXIT
		{
			echo "$HBA_MARKER"
			echo 'host    all    postgres    127.0.0.1/32    trust'
			echo 'host    all    postgres    ::1/128         trust'
			as_root cat "$hba_file"
		} >"$hba_tmp"
		# cat into the file (not mv) so its owner and mode stay as they are.
		# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner sh
		as_root sh -c 'cat "$1" >"$2"' sh "$hba_tmp" "$hba_file"
	fi
	as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" reload
	# A reload is asynchronous: give the server a moment to read the file.
	deadline=$((SECONDS + 10))
	until trusts_postgres; do
		((SECONDS < deadline)) || die "user postgres still cannot connect to $PG_HOST:$PG_PORT without a password; check $hba_file"
		sleep 0.2
	done
fi

# 5. Readiness, whichever path we took.
wait_ready
