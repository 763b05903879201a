// Prints the panic shapes the `go` multiline preset must keep whole, through Go's own paths:
// log lines, then a panic in a goroutine while another is blocked (a recovered panic
// re-raised, `[recovered]`; goroutines `created by`), reported by the runtime with every
// goroutine's trace (GOTRACEBACK=all). Every log record it prints is also written to the
// manifest (argument 1) as `L <bytes>\n<text>\n`, and `R 0\n\n` before the panic: the rest of
// the output is one record.
//
// Go is not on the machines CI runs on, so the test replays this program's captured output
// (tests/runtimes/captured/go.*). Captured with Debian's golang-go 1.19:
//   GOTRACEBACK=all go run traces.go MANIFEST 2> OUTPUT
package main

import (
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
)

var manifest *os.File

func record(kind string, text string) {
	fmt.Fprintf(manifest, "%s %d\n%s\n", kind, len(text), text)
}

func logf(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	var b strings.Builder
	logger := log.New(&b, "", log.LstdFlags)
	logger.Print(text)
	line := strings.TrimSuffix(b.String(), "\n")
	fmt.Fprintln(os.Stderr, line)
	record("L", line)
}

type config struct{ name string }

func (c *config) load(path string) {
	defer func() {
		if r := recover(); r != nil {
			panic(fmt.Sprintf("%v", r))
		}
	}()
	var m map[string]int
	m[path] = len(c.name)
}

func main() {
	var err error
	manifest, err = os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	logf("service starting")
	logf("a message\nover two lines")
	var wg sync.WaitGroup
	block := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-block
	}()
	record("R", "")
	manifest.Sync()
	done := make(chan struct{})
	go func() {
		var c *config
		c.load("/etc/app.yaml")
		close(done)
	}()
	<-done
	wg.Wait()
}
