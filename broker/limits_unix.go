//go:build unix

package broker

import "syscall"

// openFileLimit is the process's soft limit of open files (which the Go
// runtime raises to the hard limit at start). ok is false if unknown.
func openFileLimit() (files uint64, ok bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	return uint64(l.Cur), true
}
