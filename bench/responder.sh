#!/usr/bin/env bash
# bench/responder.sh - calibration-responder benchmark on loopback (issue 3).
#
#   bench/responder.sh [--seconds N] [--fixed-rate R] [--window W] [--out DIR]
#                      [--only LIST] [--no-build] [--nice N]
#                      [--workers N] [--server-cpus LIST]
#
# For each responder -- udp-floor (the machine's floor), chronyd (Debian's
# chrony 4.3), reference ntpd 4.2.8p15 and mcast-server -- and each request
# kind (none / md5 / aes-cmac; the floor only "none"; mcast-server also
# ed25519 / ed25519-md5: requests that ask for a reply signed with the
# destination's Ed25519 signing key, without and with the MD5 MAC), it runs two bounded
# loads with lab/src/bin/ntp-load.rs and records replies/s and the
# responder's CPU time per reply (utime+stime from /proc/PID/stat, before
# and after, divided by the valid replies counted by the load generator):
#
#   max    closed loop: at most W requests in flight (default 256), offered
#          up to 2,000,000/s: the most the responder (or the generator)
#          can do; the responder's core is then ~100 % busy.
#   fixed  open loop at R requests/s (default 20,000), below every
#          responder's capacity: CPU per reply at the same, moderate load.
#
# Then mcast-server's VmRSS before and after one request from each of
# 102,000 distinct source addresses (a full 100,000-entry MRU table).
#
# Placement: every responder runs on CPU 0 (taskset -c 0), the load
# generator on CPU 1. mcast-server runs with `[responder] workers = N`
# (--workers, default 1: one receive thread, like the single-threaded
# floor) on --server-cpus (default 0); e.g. --workers 2 --server-cpus 0,1
# for the SO_REUSEPORT scaling run (the load generator then shares CPU 1). Rate limiting is off in every responder (chronyd: no
# `ratelimit`; ntpd: no `restrict ... limited`; mcast-server:
# min-interval-s = 0, average-interval-log2 = 0, kod = false, which still
# looks up and updates the per-source MRU entry of every request), so the
# load can come from 64 source addresses (127.0.1.1-127.0.1.64, one per
# batch in turn, via IP_PKTINFO) and 4 source ports without being limited.
#
# Safety (DESIGN.md): all traffic is on 127.0.0.0/8; every daemon runs under
# setpriv without CAP_SYS_TIME (checked in /proc/PID/status, the run stops
# otherwise); chronyd runs with -x and a config without makestep; ntpd with
# `disable ntp` and `disable kernel`; the load generator is bounded in rate
# and time; only processes this script started are stopped, by PID.
#
# chronyd is not installed system-wide: `apt-get download chrony` and
# `dpkg -x` into $CHRONY_ROOT (default /var/cache/mcast-ntp/chrony), so no
# service is ever started and the machine's packages are not changed. An
# installed /usr/sbin/chronyd is used if present.
#
# Output: DIR/results.jsonl (one JSON object per run), DIR/mru.json,
# DIR/summary.md (the tables of BENCHMARKS.md), DIR/machine.txt, the
# daemons' logs. DIR defaults to /tmp/mcast-bench.<time>.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=10
FIXED_RATE=20000
WINDOW=256
NICE=10
OUT=""
ONLY="floor chronyd ntpd mcast-server mru"
BUILD=1
WORKERS=1
SERVER_CPUS=0
CHRONY_ROOT=${CHRONY_ROOT:-/var/cache/mcast-ntp/chrony}
PORT=11123
NTPD_PORT=123

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECS=$2; shift 2 ;;
    --fixed-rate) FIXED_RATE=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --nice) NICE=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --server-cpus) SERVER_CPUS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "responder.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] || { echo "--seconds must be 1..60" >&2; exit 2; }

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

OUT=${OUT:-/tmp/mcast-bench.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=$(mktemp -d /tmp/mcast-bench-run.XXXXXX)
: > "$OUT/results.jsonl"

# ---- processes we started, stopped by PID only --------------------------
PIDS=()
stop_pid() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- binaries -------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  say "building (release): mcast-server, mcast-keygen, ntp-load, udp-floor"
  (cd "$ROOT" && cargo build --release --quiet -p mcast-server --bin mcast-server \
      -p mcast-keys --bin mcast-keygen -p mcast-lab --bin ntp-load --bin udp-floor)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
for b in mcast-server mcast-keygen ntp-load udp-floor; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing (run without --no-build)"
done

chronyd_bin() {
  if [ -x /usr/sbin/chronyd ]; then echo /usr/sbin/chronyd; return; fi
  if [ ! -x "$CHRONY_ROOT/usr/sbin/chronyd" ]; then
    say "fetching Debian's chrony into $CHRONY_ROOT (apt-get download + dpkg -x, not installed)"
    mkdir -p "$CHRONY_ROOT/.fetch"
    (cd "$CHRONY_ROOT/.fetch" && apt-get download chrony >&2)
    dpkg -x "$(ls -t "$CHRONY_ROOT"/.fetch/chrony_*.deb | head -1)" "$CHRONY_ROOT"
  fi
  echo "$CHRONY_ROOT/usr/sbin/chronyd"
}

# ---- helpers ----------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
NOCLOCK=(setpriv --bounding-set=-sys_time --inh-caps=-sys_time)

# CPU ticks (utime + stime) of a process, all its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

port_free() {
  ! ss -Huln "sport = :$1" 2>/dev/null | grep -q .
}

# start NAME LOG CMD...: the daemon on CPU 0 (DAEMON_CPUS), without
# CAP_SYS_TIME; sets DPID.
DAEMON_CPUS=0
start_daemon() {
  local name=$1 log=$2; shift 2
  nice -n "$NICE" taskset -c "$DAEMON_CPUS" "${NOCLOCK[@]}" "$@" >"$log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  sleep 0.3
  kill -0 "$DPID" 2>/dev/null || { cat "$log" >&2; die "$name exited at start"; }
  # CAP_SYS_TIME is capability 25: it must be in neither set.
  local eff bnd
  eff=$(awk '/^CapEff:/ {print $2}' "/proc/$DPID/status")
  bnd=$(awk '/^CapBnd:/ {print $2}' "/proc/$DPID/status")
  if (( (0x$eff >> 25) & 1 )) || (( (0x$bnd >> 25) & 1 )); then
    stop_pid "$DPID"
    die "$name has CAP_SYS_TIME (CapEff $eff, CapBnd $bnd): stopped"
  fi
  say "$name started, pid $DPID (CapEff $eff, no CAP_SYS_TIME)"
}

load() {
  nice -n "$NICE" taskset -c 1 "$BIN/ntp-load" "$@"
}

# wait_ready NAME SERVER [ntp-load args]: until it gives a valid reply.
wait_ready() {
  local name=$1 server=$2; shift 2
  local i r
  for i in $(seq 1 30); do
    r=$("$BIN/ntp-load" --server "$server" --seconds 1 --rate 20 --sources 1 --sockets 1 "$@" \
        | jq -r .replies)
    [ "${r:-0}" -gt 0 ] && return 0
    kill -0 "$DPID" 2>/dev/null || die "$name exited"
  done
  die "$name gave no valid reply within 30 s"
}

# measure TARGET AUTH SERVER [ntp-load args]: the two loads, one JSON line each.
measure() {
  local target=$1 auth=$2 server=$3; shift 3
  local kind c0 c1 j
  # Warm-up, not recorded.
  load --server "$server" --seconds 1 --rate "$FIXED_RATE" "$@" >/dev/null
  for kind in max fixed; do
    local args=(--server "$server" --seconds "$SECS")
    if [ "$kind" = max ]; then
      args+=(--rate 2000000 --window "$WINDOW")
    else
      args+=(--rate "$FIXED_RATE")
    fi
    c0=$(cpu_ticks "$DPID")
    j=$(load "${args[@]}" "$@")
    c1=$(cpu_ticks "$DPID")
    j=$(jq -c --arg t "$target" --arg a "$auth" --arg k "$kind" \
          --argjson d "$((c1 - c0))" --argjson hz "$CLK_TCK" \
          --argjson w "${WORKERS_OF_RUN:-1}" --arg cpus "$DAEMON_CPUS" '
        {target: $t, auth: $a, load: $k, workers: $w, cpus: $cpus} + . +
        {server_cpu_s: ($d / $hz),
         server_cpu_share: (($d / $hz) / .duration * 1000 | round / 1000),
         cpu_us_per_reply: (if .replies > 0
                            then ($d / $hz * 1e6 / .replies * 100 | round / 100)
                            else null end)}' <<<"$j")
    echo "$j" >> "$OUT/results.jsonl"
    jq -r '"bench:   \(.target) \(.auth) \(.load): \(.replies_per_s) replies/s, \(.cpu_us_per_reply) us/reply (server cpu \(.server_cpu_share * 100 | round) %, load gen \(.loadgen_cpu_share * 100 | round) %, lost \(.lost))"' <<<"$j" >&2
  done
}

want() { [[ " $ONLY " == *" $1 "* ]]; }

# ---- machine ----------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- mcast-server 2>/dev/null || echo ' (mcast-server/ modified in the work tree)')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: seconds=$SECS fixed-rate=$FIXED_RATE window=$WINDOW nice=$NICE workers=$WORKERS server-cpus=$SERVER_CPUS"
} > "$OUT/machine.txt"
say "results in $OUT"
cat "$OUT/machine.txt" >&2

KEYS=$ROOT/tests/data/vectors/ntp.keys

# ---- 1. the floor -----------------------------------------------------------
if want floor; then
  port_free "$PORT" || die "port $PORT is in use"
  start_daemon udp-floor "$OUT/udp-floor.log" "$BIN/udp-floor" --bind "127.0.0.1:$PORT" --seconds 600
  wait_ready udp-floor "127.0.0.1:$PORT" --echo
  measure udp-floor none "127.0.0.1:$PORT" --echo
  stop_pid "$DPID"
fi

# ---- 2. chronyd -------------------------------------------------------------
if want chronyd; then
  port_free "$PORT" || die "port $PORT is in use"
  CHRONYD=$(chronyd_bin)
  # The lab keys in chrony's format (same secrets as ntp.keys keys 1 and 3).
  printf '1 MD5 ASCII:LabMd5Key-0001\n3 AES128 HEX:9666dbc010587075db4e48ff052cd376\n' \
    > "$RUN/chrony.keys"
  cat > "$RUN/chrony.conf" <<EOF
# Benchmark responder: no clock control (-x, no makestep), no sources, no
# command port, no rate limit; serves its local clock at stratum 8.
port $PORT
bindaddress 127.0.0.1
allow 127.0.0.0/8
cmdport 0
local stratum 8
keyfile $RUN/chrony.keys
pidfile $RUN/chronyd.pid
EOF
  grep -qiE "^[[:space:]]*makestep" "$RUN/chrony.conf" && die "chrony.conf must not have makestep"
  cp "$RUN/chrony.conf" "$OUT/chrony.conf"
  start_daemon chronyd "$OUT/chronyd.log" "$CHRONYD" -x -d -u root -f "$RUN/chrony.conf"
  wait_ready chronyd "127.0.0.1:$PORT"
  for auth in none md5 aes-cmac; do
    measure chronyd "$auth" "127.0.0.1:$PORT" --auth "$auth" --keys "$KEYS"
  done
  stop_pid "$DPID"
fi

# ---- 3. reference ntpd 4.2.8p15 -----------------------------------------------
if want ntpd; then
  port_free "$NTPD_PORT" || die "port $NTPD_PORT is in use"
  NTPD_ROOT=$("$ROOT/scripts/ref-ntpd" path) || die "reference ntpd missing: scripts/ref-ntpd install"
  NTPD_LIB=$NTPD_ROOT/$(sed -n 's/^libdir=//p' "$NTPD_ROOT/.installed")
  cat > "$RUN/ntpd.conf" <<EOF
# Benchmark responder: never disciplines the clock; LOCAL clock + orphan
# mode so it answers as synchronized; no 'limited', so no rate limit.
keys $KEYS
trustedkey 1 3
disable ntp
disable kernel
logfile $OUT/ntpd.log
server 127.127.1.0 minpoll 3 maxpoll 3
fudge 127.127.1.0 stratum 7
tos orphan 8 orphanwait 1
restrict default nomodify nopeer
restrict 127.0.0.1
interface ignore all
interface listen 127.0.0.1
EOF
  grep -q '^disable ntp$' "$RUN/ntpd.conf" && grep -q '^disable kernel$' "$RUN/ntpd.conf" \
    || die "ntpd.conf must disable ntp and kernel"
  cp "$RUN/ntpd.conf" "$OUT/ntpd.conf"
  start_daemon ntpd "$OUT/ntpd.out" env "LD_LIBRARY_PATH=$NTPD_LIB" \
    "$NTPD_ROOT/usr/sbin/ntpd" -n -c "$RUN/ntpd.conf"
  wait_ready ntpd "127.0.0.1:$NTPD_PORT"
  for auth in none md5 aes-cmac; do
    measure ntpd "$auth" "127.0.0.1:$NTPD_PORT" --auth "$auth" --keys "$KEYS"
  done
  stop_pid "$DPID"
fi

# ---- 4. mcast-server -----------------------------------------------------------
# The responder must be bound to 127.0.0.1: with zero destinations it binds
# a dual-stack [::] socket, and replies to IPv4 clients fail there (see
# BENCHMARKS.md). One destination on lo (224.0.1.1, one signed broadcast
# every 64 s, multicast loop off) makes it bind 127.0.0.1:$PORT.
server_conf() { # FILE REQUIRE_AUTH [SIGNING_KEY]
  local signing=""
  [ -n "${3:-}" ] && signing="signing-key = \"$3\""
  cat > "$1" <<EOF
keys = "$KEYS"
port = $PORT
control-socket = "$RUN/server.sock"

[[destination]]
address = "224.0.1.1"
interface = "lo"
key = 3
poll = 6
multicast-loop = false
$signing

[time-source]
kind = "local"
stratum = 8

[responder]
enabled = true
require-auth = $2
workers = $WORKERS
# The global signing budget is lifted so that it does not cap the signed
# runs (the default, 200/s, would): the benchmark measures signing cost.
sign-rate = 100000
sign-burst = 1000000

[rate-limit]
mru-size = 100000
min-interval-s = 0
average-interval-log2 = 0
kod = false
EOF
}

if want mcast-server; then
  DAEMON_CPUS=$SERVER_CPUS
  WORKERS_OF_RUN=$WORKERS
  # A signing key for the Ed25519 runs (mode 0600, in the run directory).
  SIGNING=$RUN/bench.ed25519
  PUBLIC=$("$BIN/mcast-keygen" signing-key -o "$SIGNING" | sed -n 1p)
  for auth in none md5 aes-cmac ed25519 ed25519-md5; do
    port_free "$PORT" || die "port $PORT is in use"
    # ed25519 requests carry no MAC: require-auth = true shows that signed
    # replies need none.
    if [ "$auth" = none ]; then ra=false; else ra=true; fi
    case $auth in ed25519*) sk=$SIGNING ;; *) sk="" ;; esac
    server_conf "$RUN/server-$auth.toml" "$ra" "$sk"
    cp "$RUN/server-$auth.toml" "$OUT/server-$auth.toml"
    "$BIN/mcast-server" check-config -c "$RUN/server-$auth.toml" >/dev/null
    start_daemon "mcast-server ($auth)" "$OUT/mcast-server-$auth.log" \
      "$BIN/mcast-server" run -c "$RUN/server-$auth.toml"
    wait_ready mcast-server "127.0.0.1:$PORT" --auth "$auth" --keys "$KEYS" --public-key "$PUBLIC"
    measure mcast-server "$auth" "127.0.0.1:$PORT" --auth "$auth" --keys "$KEYS" --public-key "$PUBLIC"
    stop_pid "$DPID"
  done
  DAEMON_CPUS=0
  WORKERS_OF_RUN=1
fi

# ---- 5. mcast-server RSS with a full MRU table ----------------------------------
if want mru; then
  port_free "$PORT" || die "port $PORT is in use"
  server_conf "$RUN/server-mru.toml" false
  start_daemon "mcast-server (mru)" "$OUT/mcast-server-mru.log" \
    "$BIN/mcast-server" run -c "$RUN/server-mru.toml"
  wait_ready mcast-server "127.0.0.1:$PORT"
  rss() { awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status"; }
  rss0=$(rss)
  fill=$(load --server "127.0.0.1:$PORT" --distinct 102000 --rate 25000 --seconds 20)
  sleep 0.5
  rss1=$(rss)
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DPID/status")
  entries=$("$BIN/mcast-server" status --json -c "$RUN/server-mru.toml" | jq .mru_entries)
  jq -n --argjson f "$fill" --argjson r0 "$rss0" --argjson r1 "$rss1" --argjson h "$hwm" \
        --argjson e "$entries" \
    '{mru_entries: $e, rss_before_kb: $r0, rss_full_kb: $r1, hwm_kb: $h,
      delta_kb: ($r1 - $r0), fill: $f}' > "$OUT/mru.json"
  say "  mcast-server RSS: $rss0 kB before, $rss1 kB with $entries MRU entries"
  stop_pid "$DPID"
fi

# ---- summary ----------------------------------------------------------------------
{
  echo "| responder | requests | max load: replies/s | max load: CPU us/reply | ${FIXED_RATE}/s: CPU us/reply | ${FIXED_RATE}/s: replies/s |"
  echo "|---|---|---:|---:|---:|---:|"
  jq -rs '
    ["udp-floor", "chronyd", "ntpd", "mcast-server"] as $targets |
    ["none", "md5", "aes-cmac", "ed25519", "ed25519-md5"] as $auths |
    group_by([.target, .auth]) |
    sort_by(.[0] as $r | [($targets | index($r.target)), ($auths | index($r.auth))]) | .[] |
    (map(select(.load == "max")) | first) as $m |
    (map(select(.load == "fixed")) | first) as $f |
    "| \($m.target)\(if $m.target == "mcast-server" then " (\($m.workers) worker\(if $m.workers > 1 then "s" else "" end), CPU \($m.cpus))" else "" end) | \($m.auth) | \($m.replies_per_s | round) | \($m.cpu_us_per_reply) | \($f.cpu_us_per_reply) | \($f.replies_per_s | round) |"
  ' "$OUT/results.jsonl"
  # The issue's targets: fewer CPU us/reply than chronyd (same requests),
  # and within 15 % of the floor.
  echo
  jq -rs '
    def cpu($t; $a; $k): map(select(.target == $t and .auth == $a and .load == $k))
                         | first | .cpu_us_per_reply // null;
    . as $all | ["max", "fixed"][] as $k | ["none", "md5", "aes-cmac", "ed25519", "ed25519-md5"][] as $a |
    ($all | cpu("mcast-server"; $a; $k)) as $s |
    ($all | cpu("chronyd"; $a; $k)) as $c |
    ($all | cpu("udp-floor"; "none"; $k)) as $f |
    select($s != null) |
    "- \($k) load, \($a): mcast-server \($s) us/reply" +
    (if $c != null then "; chronyd \($c) -> \(if $s < $c then "fewer: met" else "not fewer: NOT met" end)" else "" end) +
    (if $f != null then "; floor \($f), +\((($s / $f - 1) * 100) | round) % -> \(if $s <= $f * 1.15 then "within 15 %: met" else "over 15 %: NOT met" end)" else "" end)
  ' "$OUT/results.jsonl"
  if [ -s "$OUT/mru.json" ]; then
    jq -r '"\nmcast-server VmRSS: \(.rss_before_kb) kB idle, \(.rss_full_kb) kB with \(.mru_entries) MRU entries (+\(.delta_kb) kB) -> \(if .rss_full_kb <= 32768 then "<= 32 MB: met" else "> 32 MB: NOT met" end)"' "$OUT/mru.json"
  fi
} > "$OUT/summary.md"
cat "$OUT/summary.md"
