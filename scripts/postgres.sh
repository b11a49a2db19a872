#!/usr/bin/env bash
# postgres.sh prints a DATABASE_URL for tapline.
#
# When DATABASE_URL is set it is printed as is. Otherwise a private cluster
# under <repo>/.data/postgres is initialised (once) and started (when not
# running), database "tapline" is created, and its URL is printed. The
# cluster listens on 127.0.0.1 only, on a port chosen once and saved in
# .data/postgres/port, with trust authentication; its socket lives in
# .data/postgres/run and its log in .data/postgres/log.
#
# With --test it does the same for a second cluster, the one the tests
# use: .data/postgres-test, its files in memory (/dev/shm) where that is
# a writable tmpfs, and no fsync or full-page writes. The tests create and
# drop a database for nearly every test: on a disk, the file system's
# work of making and deleting their files costs more CPU than the tests'
# queries. The cluster `make run` keeps its data in stays on disk.
#
# The script is idempotent and safe to run concurrently (several go test
# processes do): the work is serialised with flock. Only the URL goes to
# stdout; progress and errors go to stderr.
set -euo pipefail

# "postgres.sh stop" stops the private cluster; "postgres.sh purge" stops it
# and deletes it. Without an argument the script starts it and prints a URL.
ACTION=start
TEST=0
for arg in "$@"; do
	case $arg in
	start | stop | purge) ACTION=$arg ;;
	--test) TEST=1 ;;
	*)
		echo "usage: postgres.sh [--test] [start|stop|purge]" >&2
		exit 2
		;;
	esac
done

if [[ $ACTION == start && -n "${DATABASE_URL:-}" ]]; then
	printf '%s\n' "$DATABASE_URL"
	exit 0
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE="$REPO/.data/postgres"
[[ $TEST -eq 1 ]] && BASE="$REPO/.data/postgres-test"
PGDATA_DIR="$BASE/data"
SOCK_DIR="$BASE/run"
LOG="$BASE/log"
PORT_FILE="$BASE/port"
DB_USER=tapline
DB_NAME=tapline

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# find_bindir prints the directory holding initdb, pg_ctl and postgres.
find_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	return 1
}

install_postgres() {
	command -v apt-get >/dev/null 2>&1 ||
		die "PostgreSQL server binaries not found and apt-get is not available; install PostgreSQL or set DATABASE_URL"
	log "PostgreSQL not found; installing it with apt-get"
	# Do not let the package create and start a system-wide cluster: tapline
	# runs its own.
	mkdir -p /etc/postgresql-common
	if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
		echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y -o Dpkg::Options::=--force-confold postgresql >&2
}

ROOT=0
[[ $(id -u) -eq 0 ]] && ROOT=1

mkdir -p "$REPO/.data"
exec 9>"$REPO/.data/postgres.lock"
flock 9

BINDIR=$(find_bindir || true)
if [[ -z "$BINDIR" && $ACTION != start ]]; then
	log "no PostgreSQL server binaries: nothing runs"
	[[ $ACTION == purge ]] && rm -rf "$BASE"
	exit 0
fi
if [[ -z "$BINDIR" ]]; then
	if [[ $ROOT -eq 1 ]]; then
		install_postgres
		BINDIR=$(find_bindir || true)
		[[ -n "$BINDIR" ]] || die "PostgreSQL installed but initdb/pg_ctl/postgres not found"
	else
		die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install PostgreSQL (e.g. apt-get install postgresql) or set DATABASE_URL"
	fi
fi

# as_owner runs a command as the user that owns the cluster: ourselves, or
# the postgres system user when we are root (initdb and pg_ctl refuse root).
as_owner() {
	if [[ $ROOT -eq 1 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

if [[ $ROOT -eq 1 ]] && ! id -u postgres >/dev/null 2>&1; then
	log "creating system user postgres"
	useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres ||
		adduser --system --group --home /var/lib/postgresql postgres
fi

# in_memory succeeds when the test cluster's files can live in /dev/shm:
# a tmpfs anyone may write (gone at reboot: initialised again on the next
# start).
in_memory() {
	[[ $TEST -eq 1 && -d /dev/shm && -w /dev/shm && -k /dev/shm ]] &&
		[[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]]
}

mkdir -p "$BASE"
if in_memory; then
	CLUSTER=/dev/shm/tapline-postgres-test-$(printf '%s' "$REPO" | sha256sum | cut -c1-16)
	mkdir -p "$CLUSTER"
	[[ $ROOT -eq 1 ]] && chown postgres: "$BASE" "$CLUSTER"
	chmod 700 "$CLUSTER"
	printf '%s\n' "$CLUSTER" >"$BASE/cluster"
	PGDATA_DIR="$CLUSTER/data"
	SOCK_DIR="$CLUSTER/run"
	LOG="$CLUSTER/log"
elif [[ $ROOT -eq 1 ]]; then
	chown postgres: "$BASE"
	if ! as_owner test -x "$BASE"; then
		# The checkout lies below a directory the postgres user cannot
		# enter (mktemp -d, /root): keep this checkout's cluster files in a
		# directory of its own under /var/tmp, named after the checkout,
		# and remember where in .data/postgres/cluster.
		CLUSTER=/var/tmp/tapline-postgres-$(printf '%s' "$REPO" | sha256sum | cut -c1-16)
		mkdir -p "$CLUSTER"
		chown postgres: "$CLUSTER"
		chmod 700 "$CLUSTER"
		printf '%s\n' "$CLUSTER" >"$BASE/cluster"
		PGDATA_DIR="$CLUSTER/data"
		SOCK_DIR="$CLUSTER/run"
		LOG="$CLUSTER/log"
	fi
fi

if [[ $ACTION != start ]]; then
	if [[ -s "$PGDATA_DIR/PG_VERSION" ]] && as_owner "$BINDIR/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; then
		as_owner "$BINDIR/pg_ctl" stop -D "$PGDATA_DIR" -m fast >&2
	else
		log "the private PostgreSQL is not running"
	fi
	if [[ $ACTION == purge ]]; then
		rm -rf "$BASE" "${CLUSTER:-}"
	fi
	exit 0
fi

if [[ ! -s "$PGDATA_DIR/PG_VERSION" ]]; then
	log "initialising cluster in $PGDATA_DIR"
	rm -rf "$PGDATA_DIR"
	as_owner mkdir -p "$PGDATA_DIR" "$SOCK_DIR"
	as_owner "$BINDIR/initdb" -D "$PGDATA_DIR" -U "$DB_USER" --auth=trust -E UTF8 --no-locale >"$BASE/initdb.log" 2>&1 ||
		die "initdb failed; see $BASE/initdb.log"
	as_owner tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<EOF

# tapline private cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK_DIR'
max_connections = 200
EOF
	if [[ $TEST -eq 1 ]]; then
		# Throwaway test data: nothing here must survive a crash of the
		# machine, only of PostgreSQL (which these settings still do).
		as_owner tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<EOF
fsync = off
full_page_writes = off
synchronous_commit = off
max_wal_size = 512MB
EOF
	fi
	as_owner tee "$PGDATA_DIR/pg_hba.conf" >/dev/null <<EOF
# tapline private cluster: trust on the private socket and 127.0.0.1 only.
local all all trust
host  all all 127.0.0.1/32 trust
EOF
fi
as_owner mkdir -p "$SOCK_DIR"
if [[ $ROOT -eq 1 ]]; then
	touch "$LOG"
	chown postgres: "$LOG"
fi

# port_in_use succeeds when something accepts connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! port_in_use "$p"; then
			printf '%s\n' "$p" >"$PORT_FILE"
			return 0
		fi
	done
	die "no free port found"
}

[[ -s "$PORT_FILE" ]] || pick_port
PORT=$(cat "$PORT_FILE")

ready() { "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres; }

if ! as_owner "$BINDIR/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; then
	started=0
	for attempt in 1 2 3 4 5; do
		if port_in_use "$PORT"; then
			log "port $PORT is taken; picking another"
			pick_port
			PORT=$(cat "$PORT_FILE")
			continue
		fi
		log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOG)"
		if as_owner "$BINDIR/pg_ctl" start -D "$PGDATA_DIR" -l "$LOG" -w -t 60 -o "-p $PORT" </dev/null >/dev/null 2>&1 9>&-; then
			started=1
			break
		fi
		if tail -n 20 "$LOG" | grep -q 'could not bind\|Address already in use'; then
			pick_port
			PORT=$(cat "$PORT_FILE")
			continue
		fi
		die "PostgreSQL failed to start (attempt $attempt); see $LOG"
	done
	[[ $started -eq 1 ]] || die "PostgreSQL failed to start; see $LOG"
fi

for _ in $(seq 1 100); do
	ready && break
	sleep 0.1
done
ready || die "PostgreSQL on 127.0.0.1:$PORT is not accepting connections; see $LOG"

PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -tA)
if [[ -z "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
	"${PSQL[@]}" -c "CREATE DATABASE $DB_NAME" >/dev/null
fi

printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$DB_USER" "$PORT" "$DB_NAME"
