//! The built-in presets: what JVM, CPython, Node.js and Go print for a stack trace, as small
//! state machines over the lines of one record.
//!
//! Each preset follows its runtime's own formatting code (cited at each one). A record is a
//! log line (with the lines of its message), optionally followed by an exception's header
//! (with the lines of *its* message) and a trace. What a runtime prints on its own — the
//! JVM's `Exception in thread "…"`, Go's `panic:`, Node's `file:line` prelude of an uncaught
//! error — begins a record. A line that is not part of a trace joins the record before it
//! only while that record may still be in its message: after a log line that begins like a
//! log record ([`starts_record`]), or after an exception header, and only when the line does
//! not itself begin like one.
//!
//! Owns the presets' grammars; joining, limits and timeouts stay in the joiner.

use crate::cut::multiline::shape::starts_record;

/// A built-in preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// JVM stack traces (`Throwable.printStackTrace`, the default uncaught handler).
    Java,
    /// CPython tracebacks (`traceback`, `logging.exception`, the default `sys.excepthook`).
    Python,
    /// Node.js errors (`util.inspect` of an `Error`, the uncaught-exception report).
    Node,
    /// Go panics and fatal errors (the runtime's traceback).
    Go,
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["java", "python", "node", "go"];

/// Where the pending record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// A log line and the lines of its message.
    #[default]
    Message,
    /// An exception's header and the lines of its message, before its frames.
    Header,
    /// Frames and what follows them in a trace.
    Trace,
    /// Python: the exception line that ends a traceback, and the lines of its message.
    Ended,
    /// Python: a chaining banner (`During handling of the above exception …`).
    Chained,
    /// Python: an exception group's tree, indented throughout.
    Group,
    /// Node: an uncaught error's report before the error — source line, caret, blank line.
    Prelude,
}

/// A preset's state for one stream's pending record.
#[derive(Debug, Clone, Copy, Default)]
pub struct PresetState {
    phase: Phase,
    /// The record's first line begins like a log record: its message may go on over lines
    /// that do not.
    shaped: bool,
}

impl PresetState {
    /// A plain line (not part of any trace) after a log line joins it when the log line
    /// began like a log record and this one does not.
    fn message_goes_on(&self, line: &[u8]) -> bool {
        self.shaped && !starts_record(line)
    }
}

impl Preset {
    /// The preset called `name`, if there is one.
    pub fn named(name: &str) -> Option<Preset> {
        match name {
            "java" => Some(Preset::Java),
            "python" => Some(Preset::Python),
            "node" => Some(Preset::Node),
            "go" => Some(Preset::Go),
            _ => None,
        }
    }

    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Java => "java",
            Preset::Python => "python",
            Preset::Node => "node",
            Preset::Go => "go",
        }
    }

    /// `line` begins a record: the state for it.
    pub fn begin(self, line: &[u8]) -> PresetState {
        let phase = match self {
            Preset::Java if java_header(line) || line.starts_with(b"Exception in thread \"") => {
                Phase::Header
            }
            Preset::Python => python_begin(line),
            Preset::Node if node_prelude(line) => Phase::Prelude,
            Preset::Node if node_header(line) => Phase::Header,
            Preset::Go if go_header(line) => Phase::Header,
            _ => Phase::Message,
        };
        PresetState {
            phase,
            shaped: starts_record(line),
        }
    }

    /// Whether `line` continues the pending record whose state is `state` (updated for the
    /// line when it does).
    pub fn joins(self, state: &mut PresetState, line: &[u8]) -> bool {
        match self {
            Preset::Java => java(state, line),
            Preset::Python => python(state, line),
            Preset::Node => node(state, line),
            Preset::Go => go(state, line),
        }
    }
}

/// `line` without its leading spaces and tabs, and whether it had any.
fn dedent(line: &[u8]) -> (&[u8], bool) {
    let n = line
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    (&line[n..], n > 0)
}

/// `... <digits> <rest>` (`... 5 more`, `... 3 common frames omitted`).
fn elision(body: &[u8], rest: &[&[u8]]) -> bool {
    let Some(after) = body.strip_prefix(b"... ") else {
        return false;
    };
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest.iter().any(|r| after[digits..].starts_with(r))
}

// ---------------------------------------------------------------------------------------
// Java.
//
// OpenJDK 17 `java.lang.Throwable#printStackTrace(PrintStreamOrWriter)` prints `toString()`
// (`getClass().getName()`, then `": " + getLocalizedMessage()` when there is one — a message
// may span lines), then `"\tat " + frame` per frame; `printEnclosedStackTrace` prints, with
// the enclosing trace's prefix (a tab per level of suppression), `"\t... n more"`, captions
// `"Caused by: "` / `"Suppressed: "` before the enclosed exception's `toString()`, and
// `"\t[CIRCULAR REFERENCE: " + this + "]"`. `ThreadGroup#uncaughtException` prints
// `Exception in thread "<name>" ` before `printStackTrace`. logback shortens traces with
// `... n common frames omitted`.

fn java(state: &mut PresetState, line: &[u8]) -> bool {
    let (body, indented) = dedent(line);
    if indented
        && (body.starts_with(b"at ")
            || elision(body, &[b" more", b" common frames omitted"])
            || body.starts_with(b"[CIRCULAR REFERENCE: "))
    {
        state.phase = Phase::Trace;
        return true;
    }
    let caption = body
        .strip_prefix(b"Caused by: ")
        .or_else(|| body.strip_prefix(b"Suppressed: ").filter(|_| indented));
    if let Some(enclosed) = caption {
        // The enclosed exception's message may span lines too; a circular reference has none.
        state.phase = if enclosed.starts_with(b"[CIRCULAR REFERENCE: ") {
            Phase::Trace
        } else {
            Phase::Header
        };
        return true;
    }
    if line.starts_with(b"Exception in thread \"") {
        return false;
    }
    if java_header(line) {
        return match state.phase {
            // A log call with an exception: the exception follows its message.
            Phase::Message => {
                state.phase = Phase::Header;
                true
            }
            Phase::Trace => false,
            _ => true,
        };
    }
    match state.phase {
        Phase::Header => !starts_record(line),
        // java.util.logging's formats end a record's trace with a blank line (`%6$s%n`).
        Phase::Trace => indented || line.is_empty(),
        _ => indented || state.message_goes_on(line),
    }
}

/// An exception's `toString()`: a class name — its simple name ending in `Exception`,
/// `Error` or `Throwable`, or package-qualified (`org.junit.ComparisonFailure`), nested
/// classes with `$` — alone or followed by `: ` and its message.
fn java_header(line: &[u8]) -> bool {
    let name_len = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
        .count();
    let (name, rest) = line.split_at(name_len);
    if name.is_empty() || !(rest.is_empty() || rest.starts_with(b": ") || rest == b":") {
        return false;
    }
    let mut segments = name.split(|&b| b == b'.');
    let Some(simple) = segments.next_back() else {
        return false;
    };
    if simple.is_empty() || simple[0].is_ascii_digit() {
        return false;
    }
    let typed = [&b"Exception"[..], b"Error", b"Throwable"]
        .iter()
        .any(|suffix| simple.ends_with(suffix));
    let packages: Vec<&[u8]> = segments.collect();
    let qualified = !packages.is_empty()
        && packages
            .iter()
            .all(|p| p.first().is_some_and(|b| b.is_ascii_lowercase()))
        && simple[0].is_ascii_uppercase();
    packages.iter().all(|p| !p.is_empty()) && (typed || qualified)
}

// ---------------------------------------------------------------------------------------
// Python.
//
// CPython 3.11 `Lib/traceback.py`: `TracebackException.format` prints
// `Traceback (most recent call last):`, then `StackSummary.format` per frame
// `  File "…", line N, in f`, the source line indented by four, the 3.11 `~~~^^^` markers,
// and `  [Previous line repeated N more times]`; `format_exception_only` prints
// `Type: message` (a message may span lines, notes follow it), after a `SyntaxError`'s
// indented `  File …` / source / caret block. Chained exceptions are separated by
// `\nThe above exception was the direct cause of the following exception:\n\n` or
// `\nDuring handling of the above exception, another exception occurred:\n\n`. Exception
// groups print an indented tree: `  + Exception Group Traceback (most recent call last):`,
// `  | …`, `  +-+---------------- 1 ----------------`.

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";

const GROUP: &[u8] = b"+ Exception Group Traceback (most recent call last):";

/// The phase a record beginning with `line` is in: a traceback printed on its own (the
/// default `sys.excepthook`, a `SyntaxError` in the main script), or a log line.
fn python_begin(line: &[u8]) -> Phase {
    let (body, _) = dedent(line);
    if body.starts_with(GROUP) {
        Phase::Group
    } else if line == TRACEBACK || body.starts_with(b"File \"") {
        Phase::Trace
    } else {
        Phase::Message
    }
}

fn python(state: &mut PresetState, line: &[u8]) -> bool {
    if line == TRACEBACK {
        return match state.phase {
            Phase::Message | Phase::Chained => {
                state.phase = Phase::Trace;
                true
            }
            _ => false,
        };
    }
    if line.starts_with(b"During handling of the above exception, another exception occurred:")
        || line.starts_with(b"The above exception was the direct cause of the following exception:")
    {
        state.phase = Phase::Chained;
        return true;
    }
    let (body, indented) = dedent(line);
    if indented {
        if body.starts_with(GROUP) {
            state.phase = Phase::Group;
        } else if body.starts_with(b"File \"") && state.phase == Phase::Message {
            state.phase = Phase::Trace;
        }
        return true;
    }
    if line.is_empty() {
        return match state.phase {
            Phase::Message => state.shaped,
            Phase::Group => false,
            _ => true,
        };
    }
    match state.phase {
        Phase::Trace => {
            // The exception line that ends the traceback.
            state.phase = Phase::Ended;
            true
        }
        Phase::Ended => !starts_record(line),
        Phase::Message => state.message_goes_on(line),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Node.js.
//
// Node 20 `lib/internal/util/inspect.js` `formatError` prints an error's `stack` (header
// `Name: message` or `Name [CODE]: message`, then `    at …` frames, `async` ones included),
// its own properties in a `{ … }` block opened at the end of the last frame, `[cause]: …`
// and `[errors]: [ … ]` with the nested errors indented, and shortens a cause's frames shared
// with its parent to `... N lines matching cause stack trace ...`. An uncaught exception is
// reported by `src/node_errors.cc` as `file:line`, the source line, a caret line and a blank
// line before the inspected error, then a blank line and `Node.js vX.Y.Z`.

fn node(state: &mut PresetState, line: &[u8]) -> bool {
    if node_prelude(line) {
        return false;
    }
    let (body, indented) = dedent(line);
    if state.phase == Phase::Prelude {
        if node_header(line) {
            state.phase = Phase::Header;
        }
        return true;
    }
    if indented
        && (body.starts_with(b"at ")
            || body.starts_with(b"[cause]: ")
            || body.starts_with(b"[errors]: ")
            || elision(body, &[b" lines matching cause stack trace ..."]))
    {
        state.phase = Phase::Trace;
        return true;
    }
    if node_header(line) {
        // Node has no logger that prints an error on the line after its message: an error
        // header after a log line or a trace is an error printed on its own.
        return state.phase == Phase::Header;
    }
    match state.phase {
        Phase::Trace => {
            indented
                || line.is_empty()
                || line.starts_with(b"}")
                || line.starts_with(b"]")
                || line.starts_with(b"Node.js v")
        }
        Phase::Header => !starts_record(line),
        _ => indented || state.message_goes_on(line),
    }
}

/// The first line of an uncaught error's report: `/app/server.js:12`,
/// `file:///app/m.mjs:3`, `node:internal/process/promises:289`.
fn node_prelude(line: &[u8]) -> bool {
    let Some(colon) = line.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (place, number) = (&line[..colon], &line[colon + 1..]);
    !number.is_empty()
        && number.iter().all(u8::is_ascii_digit)
        && !place.contains(&b' ')
        && (place.starts_with(b"/") || place.starts_with(b"file://") || place.starts_with(b"node:"))
}

/// An error's header: `Error: …`, `TypeError: …`, `Error [ERR_X]: …`, `AggregateError: …`,
/// `SystemError [ERR_SYSTEM_ERROR]: …`, or an inspected error without a stack, in brackets
/// (`[Error: boom]`, `[UnhandledPromiseRejection: …]`).
fn node_header(line: &[u8]) -> bool {
    let bracketed = line.strip_prefix(b"[").unwrap_or(line);
    let name_len = bracketed
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
        .count();
    let (name, mut rest) = bracketed.split_at(name_len);
    if !(name.ends_with(b"Error") || name.ends_with(b"Exception") || name.ends_with(b"Rejection")) {
        return false;
    }
    if let Some(code) = rest.strip_prefix(b" [") {
        let Some(end) = code.iter().position(|&b| b == b']') else {
            return false;
        };
        rest = &code[end + 1..];
    }
    rest.is_empty() || rest.starts_with(b":") || rest.starts_with(b"]") || rest.starts_with(b" {")
}

// ---------------------------------------------------------------------------------------
// Go.
//
// Go `src/runtime/panic.go` `printpanics` prints `panic: ` and the value (with
// ` [recovered]`, nested panics after `\tpanic: `), `fatal error: ` from `throw`/`fatal`;
// `src/runtime/signal_unix.go` adds `[signal SIGSEGV: … pc=…]`; `src/runtime/traceback.go`
// prints a blank line, `goroutine N [status]:`, then per frame the function with its
// arguments and `\tfile:line +0x…`, `created by pkg.fn in goroutine N`,
// `...additional frames elided...`. A `SIGQUIT: quit` dump starts the same way. `go run`
// adds `exit status N`.

fn go_header(line: &[u8]) -> bool {
    if line.starts_with(b"panic: ") || line.starts_with(b"fatal error: ") {
        return true;
    }
    // `SIGQUIT: quit`, `SIGABRT: abort`.
    line.strip_prefix(b"SIG").is_some_and(|rest| {
        let name = rest.iter().take_while(|b| b.is_ascii_uppercase()).count();
        name > 0 && rest[name..].starts_with(b": ")
    })
}

fn go(state: &mut PresetState, line: &[u8]) -> bool {
    if go_header(line) {
        return false;
    }
    let (_, indented) = dedent(line);
    if line.starts_with(b"goroutine ") && line.ends_with(b"]:") {
        state.phase = Phase::Trace;
        return true;
    }
    match state.phase {
        // The panic's value may span lines; `[signal …]`, nested `\tpanic:` and the blank
        // line before the goroutines follow it.
        Phase::Header => indented || line.is_empty() || !starts_record(line),
        Phase::Trace => {
            indented
                || line.is_empty()
                || line.starts_with(b"created by ")
                || line.starts_with(b"...additional frames elided...")
                || go_exit_status(line)
                || go_function(line)
        }
        _ => indented || state.message_goes_on(line),
    }
}

/// `exit status N`, as `go run` prints it.
fn go_exit_status(line: &[u8]) -> bool {
    line.strip_prefix(b"exit status ")
        .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// A frame's function line: `main.main()`, `net/http.(*conn).serve(0xc000…)`,
/// `panic({0x4a…, 0xc0…})`.
fn go_function(line: &[u8]) -> bool {
    let Some(open) = line.iter().position(|&b| b == b'(') else {
        return false;
    };
    open > 0 && !line[..open].contains(&b' ') && line.ends_with(b")")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of `lines` under `preset`, without limits.
    fn records(preset: Preset, lines: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut state = PresetState::default();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 && preset.joins(&mut state, line.as_bytes()) {
                if let Some(last) = out.last_mut() {
                    last.push('\n');
                    last.push_str(line);
                }
            } else {
                state = preset.begin(line.as_bytes());
                out.push((*line).to_string());
            }
        }
        out
    }

    #[test]
    fn java_headers() {
        for yes in [
            "java.lang.IllegalStateException: boom",
            "Outer$InnerException: message",
            "java.lang.NullPointerException",
            "org.junit.ComparisonFailure: expected",
            "MyError:",
        ] {
            assert!(java_header(yes.as_bytes()), "{yes}");
        }
        for no in [
            "2024-01-01 ERROR x",
            "Starting server: port 80",
            "com.example: started",
            "hello",
            "",
        ] {
            assert!(!java_header(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn java_joins_a_logged_trace_with_a_multi_line_message_and_splits_two_traces() {
        let out = records(
            Preset::Java,
            &[
                "2024-01-01 10:00:00 ERROR failed",
                "Outer$InnerException: first line",
                "second line",
                "\tat Outer.main(Outer.java:3)",
                "\tSuppressed: java.io.IOException: close",
                "\t\tat Outer.close(Outer.java:9)",
                "\t\t... 1 more",
                "Caused by: java.lang.RuntimeException: cause",
                "\t[CIRCULAR REFERENCE: Outer$InnerException: first line]",
                "java.lang.IllegalStateException: printed alone",
                "\tat Outer.main(Outer.java:5)",
                "Exception in thread \"main\" java.lang.Error: uncaught",
                "\tat Outer.main(Outer.java:7)",
                "2024-01-01 10:00:01 INFO next",
                "plain line",
            ],
        );
        assert_eq!(out.len(), 4, "{out:#?}");
        assert!(out[0].ends_with("first line]"));
        assert!(out[1].starts_with("java.lang.IllegalStateException"));
        assert!(out[2].starts_with("Exception in thread"));
        assert_eq!(out[3], "2024-01-01 10:00:01 INFO next\nplain line");
    }

    #[test]
    fn python_joins_chained_and_grouped_tracebacks_and_multi_line_messages() {
        let out = records(
            Preset::Python,
            &[
                "ERROR:root:failed",
                "Traceback (most recent call last):",
                "  File \"x.py\", line 1, in <module>",
                "    f()",
                "    ~^^",
                "KeyError: 'a'",
                "",
                "During handling of the above exception, another exception occurred:",
                "",
                "Traceback (most recent call last):",
                "  File \"x.py\", line 3, in <module>",
                "ValueError: first",
                "second",
                "INFO:root:a message",
                "over two lines",
                "  + Exception Group Traceback (most recent call last):",
                "  | ExceptionGroup: eg (1 sub-exception)",
                "  +-+---------------- 1 ----------------",
                "    | ValueError: x",
                "    +------------------------------------",
                "WARNING:root:next",
            ],
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(out[0].ends_with("ValueError: first\nsecond"));
        assert!(out[1].starts_with("INFO:root:a message\nover two lines\n  + Exception"));
        assert_eq!(out[2], "WARNING:root:next");
    }

    #[test]
    fn node_joins_causes_properties_and_the_uncaught_report() {
        let out = records(
            Preset::Node,
            &[
                "Error: boom",
                "    at Object.<anonymous> (/app/a.js:1:7)",
                "    at async Promise.all (index 0) {",
                "  code: 'E_BOOM',",
                "  [cause]: TypeError: inner",
                "      at f (/app/a.js:2:9)",
                "      ... 7 lines matching cause stack trace ...",
                "}",
                "/app/a.js:10",
                "  throw new Error('x');",
                "  ^",
                "",
                "Error [ERR_X]: x",
                "    at Object.<anonymous> (/app/a.js:10:9)",
                "",
                "Node.js v20.20.2",
                "plain",
            ],
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(out[0].ends_with("trace ...\n}"));
        assert!(out[1].starts_with("/app/a.js:10") && out[1].ends_with("Node.js v20.20.2"));
        assert_eq!(out[2], "plain");
    }

    #[test]
    fn go_joins_a_panic_with_its_goroutines() {
        let out = records(
            Preset::Go,
            &[
                "2024/01/01 10:00:00 serving",
                "panic: boom [recovered]",
                "\tpanic: again",
                "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]",
                "",
                "goroutine 1 [running]:",
                "main.main()",
                "\t/app/main.go:5 +0x1d",
                "created by main.start in goroutine 1",
                "\t/app/main.go:9 +0x2",
                "exit status 2",
                "2024/01/01 10:00:01 next",
            ],
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(out[1].starts_with("panic: boom") && out[1].ends_with("exit status 2"));
    }
}
