//go:build unix

package command

import (
	"os/exec"
	"syscall"
)

// errPlatform is why New cannot work here: nil, where it can.
var errPlatform error

// setGroup makes cmd start in a new process group, whose id is its pid.
func setGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to every process of the group pgid. A group that
// has none left is no error.
func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }
