#!/usr/bin/env bash
# Installs telegram-assistant as a systemd service on Debian/Ubuntu. Run from a clone, as root.
#
#   deploy/install.sh                build (release, static Swift runtime), install, enable
#   deploy/install.sh --binary PATH  install a binary built elsewhere (this host needs no Swift toolchain)
#   deploy/install.sh --dry-run      print what would be done and verify the unit; change nothing
#   deploy/install.sh --uninstall    remove the binary and the unit; keep the database and env file
#
# Idempotent: running it again upgrades the binary and the unit and keeps your configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--dry-run] [--binary PATH] | --uninstall" >&2; exit 2; }
mode=install
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) mode=dry-run ;;
    --uninstall) mode=uninstall ;;
    --binary) [ $# -ge 2 ] || usage; binary="$2"; shift ;;
    *) usage ;;
  esac
  shift
done
if [ -n "$binary" ] && [ ! -x "$binary" ]; then
  echo "$binary is not an executable file" >&2
  exit 2
fi

bin=/usr/local/bin/telegram-assistant
unit=/etc/systemd/system/telegram-assistant.service
etc=/etc/telegram-assistant
doc=/usr/local/share/doc/telegram-assistant

run() {
  if [ "$mode" = dry-run ]; then echo "+ $*"; else "$@"; fi
}

have_systemd() { [ -d /run/systemd/system ]; }

verify_unit() {
  command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found: unit not verified"; return 0; }
  # Verify a copy whose ExecStart exists, so this works before the binary is installed.
  local copy
  copy="$(mktemp -d)/telegram-assistant.service"
  sed "s|^ExecStart=.*|ExecStart=/bin/true|" deploy/telegram-assistant.service > "$copy"
  systemd-analyze verify "$copy"
  echo "unit verified: $(systemd-analyze security --offline=true "$copy" 2>/dev/null | tail -1 | sed 's/^→ //')"
  rm -rf "$(dirname "$copy")"
}

if [ "$mode" = uninstall ]; then
  if have_systemd; then
    systemctl disable --now telegram-assistant.service 2>/dev/null || true
  fi
  rm -f "$unit" "$bin"
  rm -rf "$doc"
  have_systemd && systemctl daemon-reload
  echo "Removed the service and the binary. Kept $etc/env and /var/lib/telegram-assistant (the database)."
  exit 0
fi

if [ "$mode" = install ] && [ "$(id -u)" -ne 0 ]; then
  echo "run as root (sudo $0)" >&2
  exit 1
fi

verify_unit
if [ -z "$binary" ]; then
  run deploy/install-deps.sh
  run swift build -c release --static-swift-stdlib --product telegram-assistant
  binary=.build/release/telegram-assistant
else
  run deploy/install-deps.sh --runtime
fi
run install -m 0755 "$binary" "$bin"
[ "$mode" = dry-run ] || echo "installed $("$bin" --version) at $bin"
run install -d -m 0700 "$etc"
if [ -f "$etc/env" ]; then
  echo "keeping the existing $etc/env"
else
  run install -m 0600 .env.example "$etc/env"
fi
run install -D -m 0644 README.md "$doc/README.md"
run install -m 0644 deploy/telegram-assistant.service "$unit"
if have_systemd; then
  run systemctl daemon-reload
  run systemctl enable telegram-assistant.service
else
  echo "systemd is not running here: the unit is installed but not enabled"
fi
cat <<TXT

Next:
  1. Put TELEGRAM_BOT_TOKEN and OPENAI_API_KEY into $etc/env (mode 0600).
  2. Check it:   STATE_DIRECTORY=/var/lib/telegram-assistant $bin check --env-file $etc/env
  3. Start it:   systemctl restart telegram-assistant && systemctl status telegram-assistant
  4. Logs:       journalctl -u telegram-assistant -f
TXT
