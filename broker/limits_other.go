//go:build !unix

package broker

// openFileLimit is unknown here: there is no RLIMIT_NOFILE.
func openFileLimit() (files uint64, ok bool) { return 0, false }
