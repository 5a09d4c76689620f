package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// countingWriter records what reaches the file and how many writes it took.
type countingWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	block  chan struct{} // when set, each write waits for it
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.b.Write(p)
}

func (c *countingWriter) snapshot() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String(), c.writes
}

func TestLogBatcher_KeepsEveryLineInOrderAndSharesWrites(t *testing.T) {
	out := &countingWriter{block: make(chan struct{})}
	b := newLogBatcher(out)
	log := zerolog.New(b)
	const loggers, each = 8, 500
	var wg sync.WaitGroup
	for g := range loggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				log.Info().Int("g", g).Int("i", i).Msg("request")
			}
		}()
	}
	// The first write is held up, as a slow disk would hold it, while the
	// loggers go on.
	time.Sleep(50 * time.Millisecond)
	close(out.block)
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	text, writes := out.snapshot()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != loggers*each {
		t.Fatalf("%d lines reached the file, want %d", len(lines), loggers*each)
	}
	next := make([]int, loggers)
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, `{"level":"info","g":%d,"i":%d,"message":"request"}`, &g, &i); err != nil {
			t.Fatalf("garbled line %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("logger %d: line %d came where %d was due", g, i, next[g])
		}
		next[g]++
	}
	if writes >= loggers*each/2 {
		t.Fatalf("%d writes for %d lines: lines were not batched", writes, loggers*each)
	}
}

func TestLogBatcher_ErrorsAreOutBeforeWriteReturns(t *testing.T) {
	out := &countingWriter{}
	b := newLogBatcher(out)
	defer b.Close()
	log := zerolog.New(b)
	// Hold the writer goroutine off, so only the error's own write can
	// have put the lines out.
	b.wmu.Lock()
	log.Info().Msg("before")
	b.wmu.Unlock()
	log.Error().Msg("failure")
	text, _ := out.snapshot()
	if !strings.Contains(text, `"message":"before"`) || !strings.HasSuffix(text, `"message":"failure"}`+"\n") {
		t.Fatalf("an error line and the lines before it must be written when it is logged, got %q", text)
	}
	if strings.Index(text, "before") > strings.Index(text, "failure") {
		t.Fatalf("lines out of order: %q", text)
	}
}

func TestLogBatcher_IdleLinesAreWrittenAtOnceAndCloseWritesTheRest(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := newLogBatcher(f)
	log := zerolog.New(b)
	log.Info().Msg("one")
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(f.Name())
		if strings.Contains(string(data), `"message":"one"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle process's line did not reach the file")
		}
		time.Sleep(time.Millisecond)
	}
	log.Info().Msg("two")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("after close")
	data, _ := os.ReadFile(f.Name())
	if !strings.Contains(string(data), `"message":"two"`) || !strings.Contains(string(data), `"message":"after close"`) {
		t.Fatalf("lines lost at or after Close: %q", data)
	}
}
