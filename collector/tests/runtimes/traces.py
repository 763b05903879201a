"""Prints the traceback shapes the `python` multiline preset must keep whole, through
CPython's own paths: `logging.exception` (chained, grouped, with notes, a SyntaxError, a
recursion) and the default `sys.excepthook`. Every record it prints is also written to the
manifest (the last argument) as `L|T <bytes>\\n<text>\\n` (L: a log record, T: printed alone), and
`R 0\\n\\n` before the uncaught exception: the rest of the output is one record. With
`--uncaught`, only the uncaught exception is printed (after a log record it would be the same
bytes as `logging.exception`, so it is run on its own).

Run (tests/multiline_runtimes.rs does):
    python3 traces.py [--uncaught] MANIFEST 2> OUTPUT
"""

import logging
import sys

manifest = open(sys.argv[-1], "w", encoding="utf-8")


def record(kind, text):
    manifest.write(f"{kind} {len(text.encode())}\n{text}\n")
    manifest.flush()


class ManifestHandler(logging.StreamHandler):
    def emit(self, rec):
        super().emit(rec)
        self.flush()
        record("L", self.format(rec))


def nested(n):
    if n == 0:
        return {"a": [1]}["a"][1] + 1
    return nested(n - 1)


def forever(n):
    return forever(n + 1)


def main():
    handler = ManifestHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("traces")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    log.info("service starting")
    try:
        nested(2)
    except IndexError:
        log.exception("lookup failed")
    try:
        try:
            nested(0)
        except IndexError as e:
            error = KeyError("while handling")
            error.add_note("retried 3 times")
            raise error from e
    except KeyError:
        log.exception("explicit cause")
    try:
        try:
            nested(0)
        except IndexError:
            raise ValueError("first line\nsecond line")
    except ValueError:
        log.exception("implicit context")
    log.warning("a message\nover three\nlines")
    try:
        compile("x = (1 +\n", "<config>", "exec")
    except SyntaxError:
        log.exception("bad config")
    try:
        forever(0)
    except RecursionError:
        log.exception("too deep")
    try:
        errors = []
        for n in (1, 2):
            try:
                nested(0) if n == 1 else {}["k"]
            except (IndexError, KeyError) as e:
                e.add_note(f"while handling item {n}")
                errors.append(e)
        raise ExceptionGroup("two items failed", errors)
    except ExceptionGroup:
        log.exception("grouped")
    log.info("after the traces")


if __name__ == "__main__":
    if "--uncaught" in sys.argv:
        record("R", "")
        sys.stderr.flush()
        try:
            nested(1)
        except IndexError as e:
            raise RuntimeError("unhandled\nover two lines") from e
    main()
