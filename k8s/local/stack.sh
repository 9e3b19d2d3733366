#!/usr/bin/env bash
# The local Boxscore stack without Kubernetes: PostgreSQL (the machine's own),
# kinesalite (a local Kinesis) and the service binaries as background
# processes. Used by `make up`, `make down` and `make demo`.
#
# Usage:
#   stack.sh deps
#       node_modules for kinesalite (npm ci when missing or stale), PostgreSQL
#       (.ci/ensure-postgres.sh), kinesalite on 127.0.0.1:$KINESIS_PORT with
#       its data in .run/kinesalite-data, the stream $BOXSCORE_STREAM and the
#       warehouse database $BOXSCORE_DB. With $KINESIS_ENDPOINT set, a Kinesis
#       that already runs there (LocalStack, kinesis-mock, another kinesalite,
#       AWS) is used instead: no kinesalite is started, the stream is created
#       there if missing (http:// endpoints), and stop leaves it alone.
#   stack.sh start-service [--admin-port N] [--ready-path P] NAME CMD [ARG...]
#       run CMD in the background as service NAME, then wait until
#       http://127.0.0.1:N/P answers 200 (N: --admin-port or $ADMIN_PORT;
#       P: /readyz unless --ready-path says otherwise).
#   stack.sh stop
#       stop every process started here: services newest first, kinesalite last.
#   stack.sh status
#       what runs.
#
# State lives in .run/ at the repository root: logs/NAME.log, pids/NAME.pid.
# Every command is idempotent: running what runs, or stopping what is
# stopped, succeeds and changes nothing.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO_ROOT
readonly RUN_DIR=$REPO_ROOT/.run
readonly LOG_DIR=$RUN_DIR/logs
readonly PID_DIR=$RUN_DIR/pids
readonly KINESALITE_DIR=$REPO_ROOT/k8s/local/kinesalite

readonly KINESIS_PORT=${KINESIS_PORT:-4567}
# A Kinesis not started here, when set; ours (kinesalite on KINESIS_PORT) otherwise.
readonly EXTERNAL_KINESIS_ENDPOINT=${KINESIS_ENDPOINT:-}
readonly KINESIS_ENDPOINT=${EXTERNAL_KINESIS_ENDPOINT:-http://127.0.0.1:$KINESIS_PORT}
readonly BOXSCORE_STREAM=${BOXSCORE_STREAM:-boxscore-stats}
readonly BOXSCORE_SHARDS=${BOXSCORE_SHARDS:-4}
readonly BOXSCORE_DB=${BOXSCORE_DB:-boxscore}
readonly READY_TIMEOUT_SECONDS=${STACK_READY_TIMEOUT_SECONDS:-30}
readonly STOP_TIMEOUT_SECONDS=${STACK_STOP_TIMEOUT_SECONDS:-20}
# Every process started here carries this variable naming it. Before
# signalling a PID from a pid file we check the process still carries it: after
# a reboot the PID may belong to something else entirely.
readonly OWNER_VAR=BOXSCORE_STACK_PROCESS

log() { echo "stack: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	sed -n '/^# Usage:/,/^# Every command/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

pid_file() { echo "$PID_DIR/$1.pid"; }

# is_alive: kill -0 alone is not enough, it also succeeds for a zombie, and
# on these machines PID 1 reaps orphans only every second or two.
is_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $state != Z* ]]
}

# running_pid prints the PID of process NAME if it is alive and is ours, and
# removes a stale pid file otherwise.
running_pid() {
	local name=$1 file pid
	file=$(pid_file "$name")
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	if [[ $pid =~ ^[0-9]+$ ]] && is_alive "$pid" && is_ours "$pid" "$name"; then
		echo "$pid"
		return 0
	fi
	rm -f "$file"
	return 1
}

# is_ours checks the process environment for our marker. Where /proc cannot
# tell (not Linux, or not readable), trust is_alive.
is_ours() {
	local pid=$1 name=$2 environ=/proc/$1/environ
	[[ -r $environ ]] || return 0
	# The process may exit between the test above and the read: a missing file is then
	# just "not ours".
	{ tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qxF "$OWNER_VAR=$name"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch starts CMD in the background as process NAME: own session (so a
# Ctrl-C in the terminal that ran `make up` does not reach it), output
# appended to its log, PID recorded in its pid file and in LAUNCHED_PID.
launch() {
	local name=$1
	shift
	mkdir -p "$LOG_DIR" "$PID_DIR"
	local log_file=$LOG_DIR/$name.log
	echo "=== $(date -u +%FT%TZ) starting: $*" >>"$log_file"
	# setsid execs CMD in place (we are not a process group leader here), so
	# $! is CMD's own PID.
	env "$OWNER_VAR=$name" setsid "$@" </dev/null >>"$log_file" 2>&1 &
	LAUNCHED_PID=$!
	echo "$LAUNCHED_PID" >"$(pid_file "$name")"
}

# wait_until NAME PID DESCRIPTION CHECK... polls CHECK until it succeeds. It
# fails early when process PID has died, and prints the end of its log either
# way. It takes the PID rather than reading the pid file: just after launch
# the process may not have exec'd yet, so our marker is not in its
# environment.
wait_until() {
	local name=$1 pid=$2 what=$3
	shift 3
	local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
	until "$@" >/dev/null 2>&1; do
		if ! is_alive "$pid"; then
			log "$name exited while waiting for $what; last lines of $LOG_DIR/$name.log:"
			tail -n 30 "$LOG_DIR/$name.log" >&2 || true
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "$name: no $what after ${READY_TIMEOUT_SECONDS}s; last lines of $LOG_DIR/$name.log:"
			tail -n 30 "$LOG_DIR/$name.log" >&2 || true
			# Left running on purpose, to be inspected; stop says how to end it.
			log "$name is still running (pid $pid); '$0 stop' stops it"
			exit 1
		fi
		sleep 0.2
	done
	# An answer from a process that has exited came from someone else on
	# that port (a leftover from an earlier run, say), not from NAME.
	if ! is_alive "$pid"; then
		log "$name exited, yet something answered $what: another process holds its port? Last lines of $LOG_DIR/$name.log:"
		tail -n 30 "$LOG_DIR/$name.log" >&2 || true
		exit 1
	fi
}

ensure_node_modules() {
	command -v node >/dev/null || die "node is not installed (kinesalite needs Node.js 20+)"
	# npm writes node_modules/.package-lock.json on every install: older than
	# the committed lockfile means the lockfile changed since.
	if [[ ! -d $KINESALITE_DIR/node_modules || $KINESALITE_DIR/package-lock.json -nt $KINESALITE_DIR/node_modules/.package-lock.json ]]; then
		log "installing kinesalite's node_modules (npm ci)"
		# --ignore-scripts: leveldown ships prebuilt binaries that load
		# without its install script; nothing else has one (see README.md).
		(cd "$KINESALITE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
	fi
}

start_kinesalite() {
	local pid
	if pid=$(running_pid kinesalite); then
		# Running already: still make sure it answers (it may be starting).
		wait_until kinesalite "$pid" "answer on $KINESIS_ENDPOINT" node "$KINESALITE_DIR/admin.js" wait "$KINESIS_ENDPOINT" 1
		return 0
	fi
	if port_in_use "$KINESIS_PORT"; then
		die "127.0.0.1:$KINESIS_PORT is already in use by a process not started here (see: ss -ltnp); set KINESIS_PORT to start kinesalite on another port, or KINESIS_ENDPOINT=$KINESIS_ENDPOINT to use the Kinesis that runs there"
	fi
	log "starting kinesalite on $KINESIS_ENDPOINT (data in $RUN_DIR/kinesalite-data)"
	mkdir -p "$RUN_DIR/kinesalite-data"
	launch kinesalite node "$KINESALITE_DIR/server.js" \
		--host 127.0.0.1 --port "$KINESIS_PORT" --path "$RUN_DIR/kinesalite-data"
	wait_until kinesalite "$LAUNCHED_PID" "answer on $KINESIS_ENDPOINT" node "$KINESALITE_DIR/admin.js" wait "$KINESIS_ENDPOINT" 1
}

ensure_database() {
	# The name is interpolated into SQL below: allow only plain identifiers.
	[[ $BOXSCORE_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "BOXSCORE_DB must be a lower-case identifier, got '$BOXSCORE_DB'"
	local exists
	exists=$(psql -X -w -h 127.0.0.1 -U postgres -d postgres -Atc \
		"SELECT 1 FROM pg_database WHERE datname = '$BOXSCORE_DB'")
	if [[ $exists != 1 ]]; then
		log "creating database $BOXSCORE_DB"
		psql -X -w -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $BOXSCORE_DB"
	fi
}

# use_external_kinesis checks that the Kinesis at KINESIS_ENDPOINT answers and creates the
# stream there if it is missing. admin.js signs with dummy credentials, which LocalStack,
# kinesis-mock and kinesalite accept; AWS itself (https://) does not, so there the stream must
# already exist and the services use the environment's AWS credentials.
use_external_kinesis() {
	case $KINESIS_ENDPOINT in
	http://*)
		log "using the Kinesis at $KINESIS_ENDPOINT (not started here, and 'stop' leaves it alone)"
		node "$KINESALITE_DIR/admin.js" wait "$KINESIS_ENDPOINT" 10 ||
			die "no Kinesis answers at KINESIS_ENDPOINT=$KINESIS_ENDPOINT"
		;;
	https://*)
		log "using the Kinesis at $KINESIS_ENDPOINT with the environment's AWS credentials; the stream $BOXSCORE_STREAM must exist (aws kinesis create-stream --stream-name $BOXSCORE_STREAM --shard-count $BOXSCORE_SHARDS)"
		return 0
		;;
	*) die "KINESIS_ENDPOINT must be an http:// or https:// URL, got '$KINESIS_ENDPOINT'" ;;
	esac
}

cmd_deps() {
	[[ -n $EXTERNAL_KINESIS_ENDPOINT ]] || ensure_node_modules
	command -v node >/dev/null || die "node is not installed (the stack's Kinesis admin script needs Node.js 20+)"
	"$REPO_ROOT/.ci/ensure-postgres.sh"
	ensure_database
	if [[ -n $EXTERNAL_KINESIS_ENDPOINT ]]; then
		use_external_kinesis
		[[ $KINESIS_ENDPOINT == http://* ]] || return 0
	else
		start_kinesalite
	fi
	node "$KINESALITE_DIR/admin.js" ensure-stream "$KINESIS_ENDPOINT" "$BOXSCORE_STREAM" "$BOXSCORE_SHARDS" "$READY_TIMEOUT_SECONDS"
}

cmd_start_service() {
	local admin_port=${ADMIN_PORT:-} ready_path=/readyz
	while [[ ${1:-} == --* ]]; do
		case $1 in
		--admin-port) admin_port=${2:-} ;;
		# A process without an admin server (the local S3 store) is ready when
		# this path on its port answers 200.
		--ready-path) ready_path=${2:-} ;;
		*) usage ;;
		esac
		shift 2 || usage
	done
	(($# >= 2)) || usage
	local name=$1
	shift
	[[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "service name must be lower-case letters, digits and dashes, got '$name'"
	[[ $name != kinesalite ]] || die "kinesalite is started by 'deps'"
	[[ $admin_port =~ ^[0-9]+$ ]] || die "$name: admin port needed (--admin-port N or ADMIN_PORT), got '$admin_port'"

	local pid
	if pid=$(running_pid "$name"); then
		log "$name already runs (pid $pid)"
	else
		# Something else on the admin port would answer our readiness probe
		# and hide that NAME failed to bind.
		if port_in_use "$admin_port"; then
			die "$name: 127.0.0.1:$admin_port is already in use by a process not started here (see: ss -ltnp)"
		fi
		log "starting $name (log $LOG_DIR/$name.log)"
		launch "$name" "$@"
		pid=$LAUNCHED_PID
	fi
	local url=http://127.0.0.1:$admin_port$ready_path
	wait_until "$name" "$pid" "200 from $url" curl -fsS -o /dev/null --max-time 2 "$url"
}

# stop_process NAME: SIGTERM, a grace period for a graceful shutdown, then
# SIGKILL.
stop_process() {
	local name=$1 pid
	if ! pid=$(running_pid "$name"); then
		rm -f "$(pid_file "$name")"
		return 0
	fi
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
	while is_alive "$pid"; do
		if ((SECONDS >= deadline)); then
			log "$name did not stop within ${STOP_TIMEOUT_SECONDS}s: SIGKILL"
			# The whole process group (launch made it a session leader), so
			# children it left behind go too.
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	rm -f "$(pid_file "$name")"
}

cmd_stop() {
	[[ -d $PID_DIR ]] || return 0
	# Newest pid file first: the reverse of start order, so a service stops
	# before the ones it calls (make up starts downstream services first).
	# kinesalite last: services drain and checkpoint against it.
	local file name
	while IFS= read -r file; do
		name=$(basename "$file" .pid)
		[[ $name == kinesalite ]] || stop_process "$name"
	done < <(ls -1t "$PID_DIR"/*.pid 2>/dev/null || true)
	stop_process kinesalite
}

cmd_status() {
	if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
		echo "postgresql  running  127.0.0.1:5432 (machine service)"
	else
		echo "postgresql  down     127.0.0.1:5432 (start with .ci/ensure-postgres.sh)"
	fi
	local file name pid found=0
	for file in "$PID_DIR"/*.pid; do
		[[ -e $file ]] || continue
		name=$(basename "$file" .pid)
		if pid=$(running_pid "$name"); then
			printf '%-11s running  pid %s, log %s\n' "$name" "$pid" "$LOG_DIR/$name.log"
			found=1
		else
			printf '%-11s stale pid file removed\n' "$name"
		fi
	done
	((found)) || echo "no stack process runs (start with: $0 deps)"
}

main() {
	local command=${1:-}
	shift || true
	case $command in
	deps) cmd_deps "$@" ;;
	start-service) cmd_start_service "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	*) usage ;;
	esac
}

main "$@"
