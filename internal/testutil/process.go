//go:build unix

package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// ReadPID polls path until a script has written a pid to it, a whole line.
func ReadPID(t testing.TB, path string) int {
	t.Helper()
	var pid int
	EventuallyNil(t, 10*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasSuffix(b, []byte("\n")) {
			return fmt.Errorf("%s: %q is not a whole line yet", path, b)
		}
		pid, err = strconv.Atoi(string(bytes.TrimSpace(b)))
		return err
	})
	return pid
}

// ProcessGone reports whether process pid has ended: kill -0 finds none,
// or it is a zombie its parent has yet to reap (Linux: /proc).
func ProcessGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	i := bytes.LastIndexByte(stat, ')') // the state follows the command's name
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
