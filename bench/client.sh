#!/usr/bin/env bash
# client.sh - mcast-client's memory and CPU while tracking one server on
# loopback, with every daemon feature on: state directory (replay floor,
# calibration, frequency), sd_notify with a watchdog (a test NOTIFY_SOCKET),
# metrics scraped every 5 s, the ClockBound error-bound segment written
# every second ([clock-bound]). Monitor mode, without CAP_SYS_TIME, traffic on
# lo only; the server broadcasts every 2 s (poll 1), 15x the default rate.
#
#   bench/client.sh [SECONDS]     # default 300; needs a release build
#   BIN=path/to/release bench/client.sh   # another build, for comparison
#   CLOCK_BOUND=false bench/client.sh     # without the ClockBound segment
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
bin=${BIN:-target/release}   # BIN=DIR: binaries of another build
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
keys=$PWD/tests/data/vectors/ntp.keys   # the public lab keys
cat >"$dir/server.toml" <<TOML
keys = "$keys"
port = $port
control-socket = "$dir/server.sock"
lab-allow-fast-poll = true
[[destination]]
address = "224.0.1.1"
interface = "lo"
key = 3
poll = 1
[time-source]
kind = "local"
stratum = 3
TOML
cat >"$dir/client.toml" <<TOML
keys = "$keys"
port = $port
control-socket = "$dir/client.sock"
state-directory = "$dir/state"
metrics = "127.0.0.1:$((port + 1))"
[[listen]]
group = "224.0.1.1"
interface = "lo"
[[server]]
address = "127.0.0.1"
key = 3
[clock-bound]
enabled = ${CLOCK_BOUND:-true}
path = "$dir/shm0"
TOML
caps=(setpriv --bounding-set=-sys_time --inh-caps=-sys_time)
"${caps[@]}" "$bin/mcast-server" run -c "$dir/server.toml" 2>/dev/null &
python3 - "$dir/notify.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
while True: s.recv(4096)
PY
sleep 1
NOTIFY_SOCKET=$dir/notify.sock WATCHDOG_USEC=2000000 \
  "${caps[@]}" "$bin/mcast-client" run -c "$dir/client.toml" 2>/dev/null &
client=$!
sleep 30   # calibrated and tracking
ticks() { awk '{print $14 + $15}' "/proc/$client/stat"; }
t0=$(ticks)
end=$((SECONDS + secs))
while [ $SECONDS -lt $end ]; do
  curl -s "http://127.0.0.1:$((port + 1))/metrics" >/dev/null || true
  sleep 5
done
t1=$(ticks)
hz=$(getconf CLK_TCK)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$client/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$client/status")
"$bin/mcast-client" status --json --socket "$dir/client.sock" | python3 -c \
  'import json,sys; s=json.load(sys.stdin); print("synchronized:", s.get("synchronized"), "unicast_sent:", s["servers"][0]["unicast_sent"])'
"$bin/mcast-client" now --path "$dir/shm0" | sed 's/^/  /' || true
awk -v t=$((t1 - t0)) -v hz="$hz" -v s="$secs" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
  printf "client over %d s: CPU %.2f s (%.3f %%), VmRSS %d kB, VmHWM %d kB\n", s, t/hz, 100*t/hz/s, rss, hwm }'
