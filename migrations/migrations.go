// Package migrations holds connectord's schema as numbered SQL files, embedded
// into the binary so that `connectord migrate` and `connectord serve` apply them
// without any file on disk. It must hold nothing but SQL.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
