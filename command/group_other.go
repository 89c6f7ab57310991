//go:build !unix

package command

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
)

// errPlatform is why New cannot work here: there are no process groups to
// stop a program and its children with.
var errPlatform = errors.New("command: not supported on " + runtime.GOOS)

func setGroup(*exec.Cmd)              {}
func signalGroup(int, syscall.Signal) {}
