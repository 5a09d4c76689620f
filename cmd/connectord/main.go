// Command connectord is a self-hosted integration connector service for
// Infusionsoft (Keap). See README.md.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

func main() {
	// net/http's client reports some events through the standard library's
	// logger (an answer Keap sent on an idle connection, which is then
	// dropped); write them as JSON log lines like every other.
	log.SetFlags(0)
	log.SetOutput(serverErrors{zerolog.New(os.Stderr).With().Timestamp().Str("component", "net/http").Logger()})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "connectord:", err)
		os.Exit(1)
	}
}
