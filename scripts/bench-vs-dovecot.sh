#!/usr/bin/env bash
# Coffre vs Dovecot, side by side (issue 9): the procedure of
# docs/benchmarks.md ("Session 2") as one command.
#
#   scripts/bench-vs-dovecot.sh [options]        (as root: Dovecot needs it)
#
# Sets up everything from scratch in the work directory (certificates, both
# servers' configurations, accounts, one corpus copied to each server), runs
# interleaved rounds of sync, pop3, login and mixed (round 1 = first run on
# servers that never opened the mailbox), then the idle runs on freshly
# restarted servers, and prints a Markdown table (scripts/bench_summary.py).
# Both servers are stopped on exit. Only 127.0.0.1 is bound; the system's
# own Dovecot (if any) is neither started nor touched: the private instance
# has its own base_dir, state_dir and log under the work directory.
#
# Options (environment variable in brackets; flags win):
#   --work-dir DIR       [BENCH_WORK_DIR]   default /tmp/coffre-bench-run
#   --rounds N           [BENCH_ROUNDS]     default 4
#   --idle "N1 N2"       [BENCH_IDLE]       idle sessions per run, default "1000"; "" = none
#   --scenarios "..."    [BENCH_SCENARIOS]  default "sync pop3 login mixed idle"
#   --servers "..."      [BENCH_SERVERS]    default "coffre dovecot"
#   --bin-dir DIR        [BENCH_BIN_DIR]    directory holding release `coffre` and
#                        `coffre-bench`; default: build them with
#                        CARGO_TARGET_DIR=/work/target-release (or $CARGO_TARGET_DIR)
#   --corpus-count N     [BENCH_CORPUS_COUNT] user1's messages, default 5000 (seed 1)
#   --mix-count N        [BENCH_MIX_COUNT]  mix1..8's messages, default 200 (seed 2)
#   --seconds S          [BENCH_SECONDS]    login and mixed duration, default 5
#   --workers N          [BENCH_WORKERS]    login workers, default 8
#   --clients "N1 N2"    [BENCH_CLIENTS]    mixed runs, one per client count (client i uses
#                        account mix<i>), default "8 32 64": with a 20 ms IDLE pause per
#                        cycle of 8 operations, 8 clients cap any server near 3,000 ops/s
#                        (a latency figure); 32 and 64 load the server
#   --help
#
# Output: WORK/results/{coffre,dovecot}.jsonl (one JSON line per run, with
# "server" and "round" added; idle runs have round "idle<N>"), WORK/results/meta.env,
# WORK/results/summary.md (the table, also printed), logs in WORK/logs/.
set -euo pipefail

ORIG_ARGS=$(printf "%q " "$@")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

WORK=${BENCH_WORK_DIR:-/tmp/coffre-bench-run}
ROUNDS=${BENCH_ROUNDS:-4}
IDLE=${BENCH_IDLE-1000}
SCENARIOS=${BENCH_SCENARIOS:-sync pop3 login mixed idle}
SERVERS=${BENCH_SERVERS:-coffre dovecot}
BIN_DIR=${BENCH_BIN_DIR:-}
CORPUS_COUNT=${BENCH_CORPUS_COUNT:-5000}
MIX_COUNT=${BENCH_MIX_COUNT:-200}
SECONDS_RUN=${BENCH_SECONDS:-5}
WORKERS=${BENCH_WORKERS:-8}
CLIENTS=${BENCH_CLIENTS:-8 32 64}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
        --work-dir) WORK=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --bin-dir) BIN_DIR=$2; shift 2 ;;
        --corpus-count) CORPUS_COUNT=$2; shift 2 ;;
        --mix-count) MIX_COUNT=$2; shift 2 ;;
        --seconds) SECONDS_RUN=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench-vs-dovecot: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---- argument checks ---------------------------------------------------------
is_uint "$ROUNDS" && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 50 ] || die "--rounds must be 1..50"
for n in $IDLE; do
    is_uint "$n" && [ "$n" -ge 1 ] && [ "$n" -le 10000 ] || die "--idle values must be 1..10000"
done
for v in "$CORPUS_COUNT" "$MIX_COUNT" "$SECONDS_RUN" "$WORKERS"; do
    is_uint "$v" && [ "$v" -ge 1 ] || die "counts, seconds and workers must be positive integers"
done
MAX_CLIENTS=0
for n in $CLIENTS; do
    is_uint "$n" && [ "$n" -ge 1 ] && [ "$n" -le 1000 ] || die "--clients values must be 1..1000"
    [ "$n" -gt $MAX_CLIENTS ] && MAX_CLIENTS=$n
done
[ $MAX_CLIENTS -ge 1 ] || die "--clients needs at least one count"
[ "$SECONDS_RUN" -le 600 ] || die "--seconds must be <= 600"
for s in $SCENARIOS; do
    case $s in sync|pop3|login|mixed|idle) ;; *) die "unknown scenario $s" ;; esac
done
for s in $SERVERS; do
    case $s in coffre|dovecot) ;; *) die "unknown server $s" ;; esac
done
has_scenario() { [[ " $SCENARIOS " == *" $1 "* ]]; }
has_server() { [[ " $SERVERS " == *" $1 "* ]]; }
case $WORK in
    /*) ;;
    *) die "--work-dir must be an absolute path" ;;
esac
WORK=${WORK%/}
case $WORK in
    ""|/|/tmp|/root|/home|/work|/work/main|/usr|/etc|/var) die "refusing work dir '$WORK'" ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot's master needs it; mail runs as uid 65534)"
for tool in openssl python3 ss timeout; do
    command -v $tool >/dev/null || die "$tool is required"
done

C_IMAP=20993; C_POP3=20995; D_IMAP=21993; D_POP3=21995
MAILUID=65534
# Limits of docs/benchmarks.md "Session 2", raised further only if an idle run needs more.
MAX_IDLE=0
for n in $IDLE; do [ "$n" -gt "$MAX_IDLE" ] && MAX_IDLE=$n; done
SESS_LIMIT=6000
[ $((MAX_IDLE + 100)) -gt $SESS_LIMIT ] && SESS_LIMIT=$((MAX_IDLE + 100))
CONN_LIMIT=$((2 * SESS_LIMIT))
COFFRE_ENV="GLIBC_TUNABLES=glibc.malloc.arena_max=2" # as deploy/coffre.service
DOVECOT_NAMES="dovecot,imap,imap-login,auth,auth-worker,anvil,log,config,stats,pop3-login,pop3"

# ---- binaries ----------------------------------------------------------------
if [ -z "$BIN_DIR" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-release}
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release -p coffre-server -p coffre-bench) \
        || die "cargo build failed"
    BIN_DIR=$CARGO_TARGET_DIR/release
fi
COFFRE=$BIN_DIR/coffre
BENCH=$BIN_DIR/coffre-bench
[ -x "$COFFRE" ] && [ -x "$BENCH" ] || die "no coffre/coffre-bench in $BIN_DIR"

# ---- Dovecot -----------------------------------------------------------------
dovecot_missing() {
    ! command -v dovecot >/dev/null 2>&1 \
        || ! dpkg -s dovecot-imapd >/dev/null 2>&1 || ! dpkg -s dovecot-pop3d >/dev/null 2>&1
}
if has_server dovecot && dovecot_missing; then
    log "installing dovecot-imapd dovecot-pop3d (service start suppressed via policy-rc.d)"
    own_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        own_policy=yes
    fi
    rc=0
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y dovecot-imapd dovecot-pop3d || rc=$?
    [ $own_policy = yes ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get install dovecot-imapd dovecot-pop3d failed ($rc)"
fi
DOVECOT=$(command -v dovecot || true)

# ---- stop what a previous run left, then start from scratch -------------------
# Only processes whose command line names this work directory are stopped.
stop_pid() { # pid, what
    local pid=$1 what=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$WORK/" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # 30 s
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.3
    done
    log "$what ($pid) did not stop within 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
}
descendants() { # pid -> all descendant pids
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
stop_server() { # coffre|dovecot
    local f=$WORK/$1/server.pid pid kids k
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    kids=$(descendants "$pid")
    stop_pid "$pid" "$1"
    rm -f "$f"
    # Dovecot's children exit once the master is gone; wait (bounded) for them,
    # then kill what is left of them (our own descendants only).
    for _ in $(seq 1 40); do
        local alive=no
        for k in $kids; do kill -0 "$k" 2>/dev/null && alive=yes; done
        [ $alive = no ] && return 0
        sleep 0.25
    done
    for k in $kids; do
        case ",$DOVECOT_NAMES,coffre," in
            *",$(cat "/proc/$k/comm" 2>/dev/null || echo -),"*) kill -KILL "$k" 2>/dev/null || true ;;
        esac
    done
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server coffre || true
    stop_server dovecot || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK"
chmod 0755 "$WORK"
stop_server coffre
stop_server dovecot
for p in $C_IMAP $C_POP3 $D_IMAP $D_POP3; do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is already in use"; fi
done
rm -rf "$WORK/certs" "$WORK/coffre" "$WORK/dovecot" "$WORK/results" "$WORK/logs"
mkdir -p "$WORK/certs" "$WORK/coffre" "$WORK/dovecot" "$WORK/results" "$WORK/logs" "$WORK/corpus"
RES=$WORK/results
LOGS=$WORK/logs

# Descriptors: idle runs hold one socket per session on each side.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# ---- certificates: P-256 CA + leaf for localhost / 127.0.0.1 -------------------
log "certificates"
(
    cd "$WORK/certs"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key 2>/dev/null
    cat > ca.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = coffre-bench CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    cat > leaf.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -x509 -new -key ca.key -sha256 -days 30 -config ca.cnf -out ca.pem
    openssl req -new -key leaf.key -subj /CN=localhost -out leaf.csr
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
        -days 30 -sha256 -extfile leaf.ext -out leaf.pem 2>/dev/null
    cat leaf.pem ca.pem > fullchain.pem
    chmod 0600 ca.key leaf.key
) || die "certificate generation failed"
CA=$WORK/certs/ca.pem

# ---- accounts: one password, one argon2id hash for both servers ----------------
PASSWORD=$(openssl rand -hex 12)
(umask 077; printf '%s\n' "$PASSWORD" > "$WORK/password")
HASH=$(printf '%s\n' "$PASSWORD" | "$COFFRE" hash --password-stdin) || die "coffre hash failed"
[[ $HASH == '$argon2id$'* ]] || die "unexpected hash from coffre hash: $HASH"
LOGINS="user1@example.org"
for i in $(seq 1 "$MAX_CLIENTS"); do LOGINS="$LOGINS mix$i@example.org"; done

# ---- corpus (deterministic; cached across runs by count and seed) -------------
corpus() { # count seed -> prints the directory
    local dir=$WORK/corpus/c$1-s$2
    if [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir" "$dir.tmp"
        "$BENCH" corpus --maildir "$dir.tmp" --count "$1" --seed "$2" > "$LOGS/corpus-c$1-s$2.log" \
            || die "corpus generation failed"
        mv "$dir.tmp" "$dir"
        touch "$dir/.complete"
    fi
    echo "$dir"
}
log "corpus: user1 $CORPUS_COUNT messages (seed 1), mix1..$MAX_CLIENTS $MIX_COUNT messages (seed 2)"
U1_CORPUS=$(corpus "$CORPUS_COUNT" 1)
MIX_CORPUS=$(corpus "$MIX_COUNT" 2)
install_mail() { # mail_root
    mkdir -p "$1/example.org"
    cp -a "$U1_CORPUS" "$1/example.org/user1"
    rm -f "$1/example.org/user1/.complete"
    for i in $(seq 1 "$MAX_CLIENTS"); do
        cp -a "$MIX_CORPUS" "$1/example.org/mix$i"
        rm -f "$1/example.org/mix$i/.complete"
    done
}

# ---- Coffre --------------------------------------------------------------------
CDIR=$WORK/coffre
if has_server coffre; then
    log "coffre: configuration, accounts, mail"
    install_mail "$CDIR/mail"
    cat > "$CDIR/coffre.toml" <<EOF
# Written by scripts/bench-vs-dovecot.sh. Limits and [auth] as docs/benchmarks.md, session 2.
[imaps]
listen = ["127.0.0.1:$C_IMAP"]
[pop3s]
listen = ["127.0.0.1:$C_POP3"]
[tls]
cert = "$WORK/certs/fullchain.pem"
key = "$WORK/certs/leaf.key"
[database]
url = "sqlite://$CDIR/accounts.db?mode=rwc"
[storage]
mail_root = "$CDIR/mail"
[auth]
ip_free_failures = 100000
account_free_failures = 100000
[limits]
max_sessions_per_account = $SESS_LIMIT
max_prelogin_per_address = 100
max_connections = $CONN_LIMIT
[log]
level = "warn"
EOF
    {
        echo "login,password_hash"
        for l in $LOGINS; do printf '%s,"%s"\n' "$l" "$HASH"; done
    } > "$CDIR/accounts.csv"
    "$COFFRE" check-config --config "$CDIR/coffre.toml" > "$LOGS/coffre-setup.log" 2>&1 \
        || { cat "$LOGS/coffre-setup.log" >&2; die "coffre check-config failed"; }
    "$COFFRE" db migrate --config "$CDIR/coffre.toml" >> "$LOGS/coffre-setup.log" 2>&1 \
        || { cat "$LOGS/coffre-setup.log" >&2; die "coffre db migrate failed"; }
    "$COFFRE" migrate accounts --config "$CDIR/coffre.toml" --from csv "$CDIR/accounts.csv" \
        >> "$LOGS/coffre-setup.log" 2>&1 \
        || { cat "$LOGS/coffre-setup.log" >&2; die "coffre migrate accounts failed"; }
fi

# ---- Dovecot (private instance) --------------------------------------------------
DDIR=$WORK/dovecot
if has_server dovecot; then
    [ -n "$DOVECOT" ] || die "dovecot not found"
    log "dovecot: configuration, accounts, mail"
    install_mail "$DDIR/mail"
    chown -R $MAILUID:$MAILUID "$DDIR/mail"
    mkdir -p "$DDIR/run" "$DDIR/state"
    for l in $LOGINS; do printf '%s:{ARGON2ID}%s::::::\n' "$l" "$HASH"; done > "$DDIR/passwd"
    chmod 0644 "$DDIR/passwd"
    cat > "$DDIR/dovecot.conf" <<EOF
# Written by scripts/bench-vs-dovecot.sh: a private instance, nothing from /etc/dovecot.
# Limits as docs/benchmarks.md, session 2. service imap/pop3 have a built-in
# process_limit of 1024 that default_process_limit does not override: raised too.
base_dir = $DDIR/run
state_dir = $DDIR/state
log_path = $DDIR/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <$WORK/certs/fullchain.pem
ssl_key = <$WORK/certs/leaf.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = $DDIR/passwd
}
userdb {
  driver = static
  args = uid=$MAILUID gid=$MAILUID home=$DDIR/mail/%d/%n
}
mail_location = maildir:$DDIR/mail/%d/%n
mail_uid = $MAILUID
mail_gid = $MAILUID
namespace inbox {
  inbox = yes
}
mail_max_userip_connections = $SESS_LIMIT
default_process_limit = $SESS_LIMIT
default_client_limit = $CONN_LIMIT
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $D_IMAP
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = $D_POP3
    ssl = yes
  }
}
# Clients of auth and anvil: every login service counts (Dovecot warns otherwise).
service auth {
  client_limit = $((3 * SESS_LIMIT + 100))
}
service anvil {
  client_limit = $((3 * SESS_LIMIT + 100))
}
service imap {
  process_limit = $SESS_LIMIT
}
service pop3 {
  process_limit = $SESS_LIMIT
}
EOF
    "$DOVECOT" -n -c "$DDIR/dovecot.conf" > "$LOGS/dovecot-n.conf" 2> "$LOGS/dovecot-setup.log" \
        || { cat "$LOGS/dovecot-setup.log" >&2; die "dovecot configuration check failed"; }
fi

# ---- server start/stop -----------------------------------------------------------
wait_listening() { # pid, port...
    local pid=$1; shift
    for _ in $(seq 1 150); do # 30 s
        kill -0 "$pid" 2>/dev/null || return 1
        local all=yes
        for p in "$@"; do
            ss -Hltn "sport = :$p" | grep -q . || all=no
        done
        [ $all = yes ] && return 0
        sleep 0.2
    done
    return 1
}
start_server() { # coffre|dovecot
    local pid
    case $1 in
        coffre)
            env "$COFFRE_ENV" "$COFFRE" serve --config "$CDIR/coffre.toml" >> "$LOGS/coffre.log" 2>&1 &
            pid=$!
            echo "$pid" > "$CDIR/server.pid"
            wait_listening "$pid" $C_IMAP $C_POP3 \
                || { tail -20 "$LOGS/coffre.log" >&2; die "coffre did not come up"; }
            ;;
        dovecot)
            "$DOVECOT" -F -c "$DDIR/dovecot.conf" >> "$LOGS/dovecot-stderr.log" 2>&1 &
            pid=$!
            echo "$pid" > "$DDIR/server.pid"
            wait_listening "$pid" $D_IMAP $D_POP3 \
                || { tail -20 "$DDIR/dovecot.log" "$LOGS/dovecot-stderr.log" >&2; die "dovecot did not come up"; }
            ;;
    esac
    log "$1 started (pid $pid)"
}
server_pid() { cat "$WORK/$1/server.pid"; }

# ---- runs ------------------------------------------------------------------------
# run_bench server round scenario timeout args...: appends one JSON line to
# RES/server.jsonl, with "server" and "round"; a failed run becomes an error line.
# With LABEL set (mixed: "mixed/<clients>"), the line's scenario is LABEL.
run_bench() {
    local server=$1 round=$2 scenario=$3 limit=$4; shift 4
    local key=${LABEL:-$scenario}
    local out=$LOGS/$server-${key//\//-}-$round.out err=$LOGS/$server-${key//\//-}-$round.err rc=0
    timeout -k 10 "$limit" "$BENCH" "$scenario" --host 127.0.0.1 --ca "$CA" \
        --password "$PASSWORD" --json "$@" > "$out" 2> "$err" || rc=$?
    local line
    line=$(grep -m1 '^{"scenario"' "$out" || true)
    if [ $rc -eq 0 ] && [ -n "$line" ]; then
        printf '%s\n' "$line" | sed "s/^{/{\"server\":\"$server\",\"round\":\"$round\",/; s|\"scenario\":\"$scenario\"|\"scenario\":\"$key\"|" >> "$RES/$server.jsonl"
        log "$server $key round $round: $(printf '%s' "$line" | cut -c1-160)"
    else
        local msg
        msg=$(tail -c 300 "$err" | tr '\n\r\t"\\' '     ' | tr -d '\000-\037')
        printf '{"server":"%s","round":"%s","scenario":"%s","error":"exit %s: %s"}\n' \
            "$server" "$round" "$key" "$rc" "$msg" >> "$RES/$server.jsonl"
        log "$server $key round $round FAILED (exit $rc): $msg"
    fi
}
ports() { # server -> "--imap-port X --pop3-port Y"
    if [ "$1" = coffre ]; then echo "--imap-port $C_IMAP --pop3-port $C_POP3"; else echo "--imap-port $D_IMAP --pop3-port $D_POP3"; fi
}

START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT (working tree has uncommitted changes)"
fi
{
    echo "start=$START_UTC"
    echo "commit=$COMMIT"
    echo "dovecot_version=$([ -n "$DOVECOT" ] && "$DOVECOT" --version 2>/dev/null || echo none)"
    echo "rustc=$(rustc --version 2>/dev/null || echo unknown)"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -r)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "coffre_env=$COFFRE_ENV"
    echo "rounds=$ROUNDS"
    echo "idle=$IDLE"
    echo "scenarios=$SCENARIOS"
    echo "servers=$SERVERS"
    echo "corpus=user1 $CORPUS_COUNT msgs seed 1 ($(du -sb "$U1_CORPUS" | cut -f1) bytes); mix1..$MAX_CLIENTS $MIX_COUNT msgs seed 2"
    echo "seconds=$SECONDS_RUN"
    echo "workers=$WORKERS"
    echo "clients=$CLIENTS"
    echo "nofile=$NOFILE"
    echo "limits=sessions/account $SESS_LIMIT, connections $CONN_LIMIT"
    echo "bin_dir=$BIN_DIR"
    echo "command=scripts/bench-vs-dovecot.sh $ORIG_ARGS"
} > "$RES/meta.env"

for s in $SERVERS; do start_server "$s"; done

for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    for sc in sync pop3 login mixed; do
        has_scenario $sc || continue
        for s in $SERVERS; do
            # shellcheck disable=SC2046
            case $sc in
                sync|pop3) run_bench "$s" "$r" $sc 900 $(ports "$s") --user user1@example.org ;;
                login) run_bench "$s" "$r" login $((SECONDS_RUN + 120)) $(ports "$s") \
                    --user user1@example.org --workers "$WORKERS" --seconds "$SECONDS_RUN" ;;
                mixed) for n in $CLIENTS; do
                    LABEL=mixed/$n run_bench "$s" "$r" mixed $((SECONDS_RUN + 120)) $(ports "$s") \
                        --user 'mix%d@example.org' --users "$n" --clients "$n" --seconds "$SECONDS_RUN"
                    done ;;
            esac
        done
    done
done

if has_scenario idle && [ -n "$IDLE" ]; then
    for s in $SERVERS; do stop_server "$s"; done
    for n in $IDLE; do
        for s in $SERVERS; do
            log "idle $n sessions on a freshly started $s"
            start_server "$s"
            sleep 2
            if [ "$s" = coffre ]; then
                mem=(--pid "$(server_pid coffre)")
                new=$CDIR/mail/example.org/user1/new
            else
                mem=(--process-name "$DOVECOT_NAMES")
                # --process-name sums every process of these names: another
                # Dovecot on the machine would be counted too.
                others=$(pgrep -x dovecot | grep -vx "$(server_pid dovecot)" || true)
                if [ -n "$others" ]; then
                    log "WARNING: other dovecot processes ($others) are counted in Dovecot's PSS"
                    echo "warning_idle$n=other dovecot masters running ($others), counted in PSS" >> "$RES/meta.env"
                fi
                new=$DDIR/mail/example.org/user1/new
            fi
            # shellcheck disable=SC2046
            run_bench "$s" "idle$n" idle $((300 + n / 5)) $(ports "$s") --user user1@example.org \
                --sessions "$n" --concurrency 16 --warmup 16 "${mem[@]}" --deliver-to "$new"
            stop_server "$s"
        done
    done
fi

for s in $SERVERS; do stop_server "$s"; done
{
    echo "end=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
} >> "$RES/meta.env"

python3 "$SCRIPT_DIR/bench_summary.py" "$RES" | tee "$RES/summary.md"
log "results: $RES (summary.md, coffre.jsonl, dovecot.jsonl, meta.env); logs: $LOGS"
