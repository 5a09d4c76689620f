//go:build !unix

package main

// descriptorLimit is unknown outside Unix.
func descriptorLimit() uint64 { return 0 }
