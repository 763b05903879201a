// Prints the stack-trace shapes the `java` multiline preset must keep whole, through the
// JDK's own paths: java.util.logging with an exception, Throwable.printStackTrace, and the
// default uncaught-exception handler. Every record it prints is also written to the manifest
// (argument 1) as `L|T <bytes>\n<text>\n` (L: a log record, T: a trace printed alone), and
// `R 0\n\n` before the uncaught exception: the rest of the output is one record.
//
// Run (tests/multiline_runtimes.rs does, from this directory):
//   java -Djava.util.logging.SimpleFormatter.format='%1$tF %1$tT.%1$tL %4$s %5$s%6$s%n' \
//        Traces.java MANIFEST 2> OUTPUT
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.logging.ConsoleHandler;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

public class Traces {
    static PrintStream manifest;

    static void record(char kind, String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        manifest.print(kind + " " + bytes.length + "\n");
        manifest.print(text + "\n");
        manifest.flush();
    }

    /** An exception whose class is nested and not package-qualified. */
    static class InnerException extends Exception {
        InnerException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    static class QuietError extends Error {
        QuietError(String message) {
            super(message);
        }
    }

    static void deep(int n) throws InnerException {
        if (n == 0) {
            throw new InnerException("failed at the bottom\nwith a second line", new IllegalStateException("root cause"));
        }
        deep(n - 1);
    }

    static String printed(Throwable t) {
        StringWriter text = new StringWriter();
        t.printStackTrace(new PrintWriter(text));
        String s = text.toString();
        return s.endsWith(System.lineSeparator()) ? s.substring(0, s.length() - System.lineSeparator().length()) : s;
    }

    public static void main(String[] args) throws Exception {
        manifest = new PrintStream(new FileOutputStream(args[0]), true, StandardCharsets.UTF_8);
        Logger logger = Logger.getLogger("traces");
        logger.setUseParentHandlers(false);
        SimpleFormatter formatter = new SimpleFormatter();
        Handler console = new ConsoleHandler() {
            @Override
            public synchronized void publish(LogRecord r) {
                super.publish(r);
                flush();
                String text = formatter.format(r);
                record('L', text.substring(0, text.length() - System.lineSeparator().length()));
            }
        };
        console.setFormatter(formatter);
        logger.addHandler(console);

        logger.info("service starting");
        try {
            deep(3);
        } catch (InnerException e) {
            logger.log(Level.SEVERE, "request failed", e);
        }
        logger.warning("a message\nover three\nlines");

        // Suppressed exceptions with their own causes, from try-with-resources.
        try {
            try (AutoCloseable first = () -> { throw new IOException("close failed", new QuietError("disk gone")); };
                 AutoCloseable second = () -> { throw new IllegalArgumentException("second close"); }) {
                throw new RuntimeException("body failed");
            }
        } catch (Exception e) {
            logger.log(Level.SEVERE, "resources", e);
        }

        // A cycle of causes: printed once, then [CIRCULAR REFERENCE: …].
        Exception a = new Exception("a");
        Exception b = new Exception("b", a);
        a.initCause(b);
        logger.log(Level.SEVERE, "circular", a);

        // Printed alone, twice in a row, without a log line.
        try {
            deep(1);
        } catch (InnerException e) {
            System.err.println(printed(e));
            record('T', printed(e));
        }
        Exception bare = new UnsupportedOperationException();
        System.err.println(printed(bare));
        record('T', printed(bare));
        logger.info("after the traces");

        // The default uncaught-exception handler: `Exception in thread "main" …`.
        record('R', "");
        System.err.flush();
        deep(2);
    }
}
