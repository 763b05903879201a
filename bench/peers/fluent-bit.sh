#!/bin/bash
# Fluent Bit peer (a binary you provide: ringtail-bench run --peer fluent-bit=/path/to/fluent-bit):
# tail files matching glob $1 (tail input) -> one output file $2 (file output, the line only).
# usage: fluent-bit.sh '<glob>' <output-file> <work-dir>
# env: PEER_BIN (the fluent-bit binary, required)
#      MULTILINE_START_REGEX (Onigmo, e.g. '^[0-9]{4}-') -> a regex multiline parser: a record starts
#      at a matching line and takes every following line that does not match
#      CRI_PARSER=1 -> multiline.parser cri (CRI lines decoded, P/F partials joined; the message
#      written alone), as the Fluent Bit docs configure Kubernetes containers' logs
#      MAX_MSG_SIZE (bytes, default 1M): buffer_max_size, the longest line read whole (Fluent
#      Bit refuses one smaller than buffer_chunk_size, 512k here)
# Runs fluent-bit in the foreground (exec, so this PID is fluent-bit's); stop it with SIGTERM.
#
# Settings, per the Fluent Bit docs' advice for throughput and no loss: a tail database for
# offsets, read_from_head (files are created after start), 1 s discovery, large read chunks,
# no memory limit that would pause the input (no mem_buf_limit), skip_long_lines off.
# Run here with Fluent Bit 5.1.1 built from source (../shared/peers/fluent-bit).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 '<glob>' <output-file> <work-dir>" >&2; exit 2; }
GLOB=$1; OUT=$2; WORK=$3
BIN=${PEER_BIN:?set PEER_BIN to the fluent-bit binary}
[ -x "$BIN" ] || { echo "fluent-bit not executable at $BIN" >&2; exit 1; }
WORK=$(realpath -m -s "$WORK"); OUT=$(realpath -m -s "$OUT")
mkdir -p "$WORK" "$(dirname "$OUT")"
PARSERS=$WORK/parsers.conf
ML=""
: > "$PARSERS"
if [ -n "${MULTILINE_START_REGEX:-}" ]; then
  cat > "$PARSERS" <<PARSERS
[MULTILINE_PARSER]
    name          bench_start
    type          regex
    flush_timeout 1000
    rule          "start_state"  "/${MULTILINE_START_REGEX}/"  "cont"
    rule          "cont"         "/^(?!${MULTILINE_START_REGEX#^})/"  "cont"
PARSERS
  ML="    multiline.parser  bench_start"
fi
if [ -n "${CRI_PARSER:-}" ]; then
  ML="    multiline.parser  cri"
fi
CONF=$WORK/fluent-bit.conf
cat > "$CONF" <<CONF
[SERVICE]
    flush         1
    log_level     warn
    parsers_file  $PARSERS

[INPUT]
    name               tail
    path               $GLOB
    db                 $WORK/tail.db
    read_from_head     true
    refresh_interval   1
    buffer_chunk_size  512k
    buffer_max_size    ${MAX_MSG_SIZE:-1M}
    skip_long_lines    off
    rotate_wait        5
$ML

[OUTPUT]
    name      file
    match     *
    path      $(dirname "$OUT")
    file      $(basename "$OUT")
    format    template
    template  {log}
CONF
exec "$BIN" -c "$CONF"
