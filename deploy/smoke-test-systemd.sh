#!/usr/bin/env bash
# The service under a real systemd, end to end, on a developer machine (root; not part of CI).
# Boots Debian 12 with systemd in systemd-nspawn, installs the release binary there with
# `deploy/install.sh --binary`, and drives the service against telegram-assistant-fakes (fake
# Telegram and model servers on the shared loopback). Nothing reaches the internet but the Debian
# mirror that debootstrap and apt use.
#
#   deploy/smoke-test-systemd.sh              about 2 minutes after the first run
#   deploy/smoke-test-systemd.sh --watchdog   also freezes the bot and waits for systemd's
#                                             watchdog to restart it (2 more minutes)
#
# The first run installs debootstrap and systemd-container and bootstraps a minimal Debian 12 into
# .build-smoke/pristine; every run starts from a fresh copy of it, so "a host without libcurl4"
# stays true. Prints PASS/FAIL per step and exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

watchdog=no
case "${1:-}" in
  "") ;;
  --watchdog) watchdog=yes ;;
  *) echo "usage: $0 [--watchdog]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

work=.build-smoke
pristine=$work/pristine
machine=$work/machine
failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
step() { echo "---- $*"; }

mkdir -p "$work"
for package in debootstrap systemd-container curl; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null
done
if [ ! -x "$pristine/lib/systemd/systemd" ]; then
  step "bootstrapping a minimal Debian 12 (first run only)"
  rm -rf "$pristine"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,sqlite3 bookworm "$pristine" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { echo "debootstrap failed; see $work/debootstrap.log" >&2; exit 1; }
fi

step "building the release binary and the fakes"
swift build -c release --static-swift-stdlib --product telegram-assistant >/dev/null
swift build --product telegram-assistant-fakes >/dev/null

fakes_pid=""
nspawn_pid=""
cleanup() {
  [ -n "$nspawn_pid" ] && kill "$nspawn_pid" 2>/dev/null && wait "$nspawn_pid" 2>/dev/null
  [ -n "$fakes_pid" ] && kill "$fakes_pid" 2>/dev/null
  rm -rf "$machine"
}
trap cleanup EXIT

rm -rf "$machine"
cp -a "$pristine" "$machine"
mkdir -p "$machine/root/src"
cp -r deploy README.md .env.example "$machine/root/src/"
cp .build/release/telegram-assistant "$machine/root/telegram-assistant"

.build/debug/telegram-assistant-fakes >"$work/fakes.env" &
fakes_pid=$!
for _ in $(seq 50); do grep -q CONTROL_URL "$work/fakes.env" && break; sleep 0.1; done
control=$(sed -n 's/^CONTROL_URL=//p' "$work/fakes.env")

step "booting systemd in the container"
systemd-nspawn -D "$machine" --register=no --keep-unit --boot >"$work/console.log" 2>&1 &
nspawn_pid=$!
init=""
for _ in $(seq 100); do
  init=$(pgrep -P "$nspawn_pid" -x systemd || true)
  [ -n "$init" ] && break
  sleep 0.1
done
[ -n "$init" ] || { echo "the container did not boot; see $work/console.log" >&2; exit 1; }
inside() { nsenter -t "$init" -a "$@"; }
state=""
for _ in $(seq 300); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 0.2
done
echo "systemd $(inside systemctl --version | head -1 | cut -d' ' -f2) is $state"

# Helpers. `within N condition…` polls the condition (re-evaluated each time) for up to N seconds.
property() { inside systemctl show telegram-assistant -p "$1" --value; }
within() {
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
  return 1
}
sent() { curl -fsS "$control/sent?chat=$1"; }
say() { curl -fsS -X POST "$control/say?chat=$1" --data-binary "$2" >/dev/null; }
shows() { [ "$(sent "$1")" = "$2" ]; }
shows_text() { sent "$1" | grep -qF "$2"; }
restarted_since() { [ "$(property NRestarts)" -gt "$1" ] && [ "$(property ActiveState)" = active ]; }
installed() { [ "$(inside dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

step "install.sh --binary on a host without libcurl4 or ca-certificates"
if inside sh -c 'cd /root/src && deploy/install.sh --binary /root/telegram-assistant' >"$work/install.log" 2>&1 &&
  installed libcurl4 && installed ca-certificates; then
  pass "installed, runtime packages added, unit enabled: $(inside systemctl is-enabled telegram-assistant)"
else
  fail "install (see $work/install.log)"
fi

# Points an env file at a fakes process: fill_env ENV_FILE FAKES_OUTPUT.
fill_env() {
  local key value
  while IFS='=' read -r key value; do
    [ "$key" = CONTROL_URL ] && continue
    sed -i "s|^$key=.*|$key=$value|" "$1"
  done <"$2"
}
env=$machine/etc/telegram-assistant/env
cp "$env" "$work/env.empty"
fill_env "$env" "$work/fakes.env"
sed -i 's|^TELEGRAM_POLL_TIMEOUT=.*|TELEGRAM_POLL_TIMEOUT=5|' "$env"

step "check, as root, before the first start (the README's order)"
if inside env STATE_DIRECTORY=/var/lib/telegram-assistant telegram-assistant check --env-file /etc/telegram-assistant/env \
  >"$work/check.log" 2>&1; then
  pass "$(grep -c '^ok' "$work/check.log") checks passed"
else
  fail "check (see $work/check.log)"
fi

step "start"
if inside systemctl start telegram-assistant && [ "$(property ActiveState)" = active ]; then
  pass "active after READY=1; status: $(property StatusText)"
else
  fail "start: $(property ActiveState) ($(inside journalctl -u telegram-assistant -o cat | tail -3))"
fi

step "an answer"
say 1 "hello"
if within 20 shows 1 '["Echo: hello"]'; then
  pass "the user sees Echo: hello; journal: $(inside journalctl -u telegram-assistant -o cat | grep -c '"event":"reply"') reply record"
else
  fail "answer: $(sent 1)"
fi

step "stop during a long answer"
curl -fsS -X POST "$control/slow?pieces=600" >/dev/null
say 2 "a long one"
sleep 3
started=$(date +%s)
inside systemctl stop telegram-assistant
took=$(($(date +%s) - started))
last=$(sent 2)
if [ "$(property Result)" = success ] && [ "$(property ExecMainStatus)" = 0 ] && [[ "$last" == *'(interrupted)"]' ]]; then
  pass "stopped in ${took} s with exit 0; the answer ends with (interrupted)"
else
  fail "stop: result $(property Result), status $(property ExecMainStatus), ${took} s, chat shows ${last: -80}"
fi

step "start again: nothing answered twice"
inside systemctl start telegram-assistant || true
say 1 "again"
if within 20 shows 1 '["Echo: hello","Echo: again"]' && shows 2 "$last"; then
  pass "one new answer, nothing repeated"
else
  fail "after restart: chat 1 $(sent 1)"
fi

step "SIGKILL"
pid=$(property MainPID)
inside sh -c "kill -KILL $pid"
if within 20 restarted_since 0; then
  pass "restarted (pid $pid → $(property MainPID))"
else
  fail "after SIGKILL: $(property ActiveState), restarts $(property NRestarts)"
fi
say 1 "after the kill"
within 20 shows_text 1 "Echo: after the kill" &&
  pass "answers after the restart" || fail "no answer after the restart: $(sent 1)"

step "online backup"
if inside sqlite3 /var/lib/telegram-assistant/assistant.sqlite ".backup /root/backup.sqlite" &&
  [ "$(inside sqlite3 /root/backup.sqlite 'PRAGMA integrity_check')" = ok ]; then
  pass "backup of a running bot: $(inside sqlite3 /root/backup.sqlite 'SELECT count(*) FROM message') messages, integrity ok"
else
  fail "backup"
fi
say 1 "after the backup"
within 20 shows_text 1 "Echo: after the backup" &&
  pass "the bot still writes after a root backup" || fail "no answer after the backup"

if [ "$watchdog" = yes ]; then
  step "a frozen bot (SIGSTOP) and the watchdog"
  restarts=$(property NRestarts)
  inside sh -c "kill -STOP $(property MainPID)"
  if within 180 restarted_since "$restarts"; then
    pass "killed by the watchdog and restarted: $(inside journalctl -u telegram-assistant -o cat | grep -m1 'Watchdog timeout')"
  else
    fail "no watchdog restart in 3 minutes"
  fi
fi

step "a second bot on the same host (the README's recipe)"
.build/debug/telegram-assistant-fakes >"$work/fakes-second.env" &
second_fakes=$!
for _ in $(seq 50); do grep -q CONTROL_URL "$work/fakes-second.env" && break; sleep 0.1; done
second_control=$(sed -n 's/^CONTROL_URL=//p' "$work/fakes-second.env")
cp "$env" "$machine/etc/telegram-assistant/second.env"
fill_env "$machine/etc/telegram-assistant/second.env" "$work/fakes-second.env"
inside sh -c "$(sed -n 's/^  *\(sed -e .*telegram-assistant-second.service\)$/\1/p' README.md)"
inside systemctl daemon-reload
inside systemctl start telegram-assistant-second || true
control=$second_control say 9 "second bot"
if control=$second_control within 20 shows_text 9 "Echo: second bot" &&
  [ "$(inside systemctl is-active telegram-assistant)" = active ] &&
  [ -f "$machine/var/lib/private/telegram-assistant-second/assistant.sqlite" ]; then
  pass "both bots run, each with its own database"
else
  fail "second bot: $(inside systemctl is-active telegram-assistant-second), $(inside journalctl -u telegram-assistant-second -o cat | tail -2)"
fi
inside systemctl stop telegram-assistant-second || true
kill "$second_fakes" 2>/dev/null || true

step "check as root where the service's directory exists but its database does not"
inside systemctl stop telegram-assistant
inside sh -c 'rm -f /var/lib/private/telegram-assistant/assistant.sqlite*'
inside env STATE_DIRECTORY=/var/lib/telegram-assistant telegram-assistant check --env-file /etc/telegram-assistant/env >/dev/null 2>&1 || true
inside systemctl start telegram-assistant || true
say 3 "a fresh database"
if within 20 shows 3 '["Echo: a fresh database"]'; then
  pass "the service can still write the database check created"
else
  fail "after check created the database: $(inside journalctl -u telegram-assistant -o cat | grep -m1 '^error:')"
fi

step "an empty env file"
cp "$work/env.empty" "$env"
restarts=$(property NRestarts)
inside systemctl restart telegram-assistant >/dev/null 2>&1 || true
sleep 7  # longer than RestartSec=5: a restart would have happened by now
if [ "$(property ExecMainStatus)" = 78 ] && [ "$(property NRestarts)" = "$restarts" ]; then
  pass "exit 78, not restarted; the journal says: $(inside journalctl -u telegram-assistant -o cat | grep -m1 'is required')"
else
  fail "empty env: status $(property ExecMainStatus), restarts $(property NRestarts) (were $restarts)"
fi

step "uninstall"
inside sh -c 'cd /root/src && deploy/install.sh --uninstall' >/dev/null
if [ ! -e "$machine/usr/local/bin/telegram-assistant" ] && [ ! -e "$machine/etc/systemd/system/telegram-assistant.service" ] &&
  [ -f "$env" ] && [ -f "$machine/var/lib/private/telegram-assistant/assistant.sqlite" ]; then
  pass "binary and unit removed; env file and database kept"
else
  fail "uninstall"
fi

echo
if [ "$failures" -eq 0 ]; then echo "All steps passed."; else echo "$failures steps failed."; exit 1; fi
