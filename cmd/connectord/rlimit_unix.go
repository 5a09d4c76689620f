//go:build unix

package main

import "syscall"

// descriptorLimit is the process's limit on open files (ulimit -n); 0 when unknown.
func descriptorLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return uint64(l.Cur)
}
