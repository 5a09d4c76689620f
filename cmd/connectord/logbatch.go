package main

import (
	"io"
	"sync"

	"github.com/rs/zerolog"
)

// maxLogBatch is how many bytes of log lines wait before a Write writes
// them itself rather than leave them to the writer goroutine.
const maxLogBatch = 64 << 10

// logBatcher hands log lines to one goroutine that writes them to out, so
// that under load many lines (a line a request) share one system call, and
// when the process is idle each line is written as soon as that goroutine
// runs. A line at error level or above is written before its Write returns,
// with every line before it, so what led up to a crash is out. Lines keep
// their order. It is used when the log goes to a file or pipe, where every
// write is a system call; tests log to memory and write straight through.
type logBatcher struct {
	out io.Writer

	wmu    sync.Mutex // held while writing to out, so batches go out in order
	mu     sync.Mutex // guards buf and closed
	buf    []byte
	spare  []byte
	closed bool

	wake chan struct{}
	done chan struct{}
	gone chan struct{}
}

func newLogBatcher(out io.Writer) *logBatcher {
	b := &logBatcher{out: out, wake: make(chan struct{}, 1), done: make(chan struct{}), gone: make(chan struct{})}
	go b.run()
	return b
}

func (b *logBatcher) Write(p []byte) (int, error) { return b.WriteLevel(zerolog.NoLevel, p) }

// WriteLevel is zerolog's LevelWriter: it is how the batcher knows a line's level.
func (b *logBatcher) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	urgent := b.closed || l >= zerolog.ErrorLevel && l <= zerolog.PanicLevel || len(b.buf)+len(p) > maxLogBatch
	if !urgent {
		b.buf = append(b.buf, p...) // zerolog reuses p once Write returns
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default: // the writer is already due to run
		}
		return len(p), nil
	}
	b.mu.Unlock()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	batch := b.take()
	b.mu.Unlock()
	if _, err := b.out.Write(batch); err != nil {
		return 0, err
	}
	return len(p), nil
}

// take returns the lines waiting and empties the buffer; b.mu is held.
func (b *logBatcher) take() []byte {
	batch := b.buf
	b.buf, b.spare = b.spare[:0], batch
	return batch
}

func (b *logBatcher) run() {
	defer close(b.gone)
	for {
		select {
		case <-b.wake:
		case <-b.done:
			b.flush()
			return
		}
		b.flush()
	}
}

func (b *logBatcher) flush() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	batch := b.take()
	b.mu.Unlock()
	if len(batch) > 0 {
		_, _ = b.out.Write(batch) // nowhere to report a failing log
	}
}

// Close writes what is waiting and stops the writer goroutine; later lines
// are written straight through.
func (b *logBatcher) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.done)
	<-b.gone
	return nil
}
