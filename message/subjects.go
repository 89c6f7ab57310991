package message

import (
	"errors"
	"fmt"
	"strings"
)

// Subjects. A node ID is one subject token, so tasks.<nodeID> reaches exactly
// one worker.
const (
	// SubjectResults carries every result, to the master and to observers.
	SubjectResults = "results"
	// SubjectTaskPrefix prefixes a worker's task subject.
	SubjectTaskPrefix = "tasks."
)

// TaskSubject is the subject the worker with the given node ID listens on.
func TaskSubject(nodeID string) string { return SubjectTaskPrefix + nodeID }

// SubjectSubmit is where a client without a NATS user submits a task, as
// the anonymous submitter ""; the master answers. A client with a user
// submits on SubmitSubject(user).
const SubjectSubmit = "tasks.submit"

// SubjectSubmitAs is what the master subscribes to for the submissions of
// named submitters: tasks.submit.<submitter>.
const SubjectSubmitAs = SubjectSubmit + ".*"

// SubmitSubject is where submitter submits: tasks.submit.<submitter>, or
// SubjectSubmit for "" (anonymous). A submitter is a NATS user: its name,
// or its public nkey (ValidSubmitter); in secure mode a user may publish
// on its own subject only, so the master knows who submitted.
func SubmitSubject(submitter string) string {
	if submitter == "" {
		return SubjectSubmit
	}
	return SubjectSubmit + "." + submitter
}

// SubmitterOf is the submitter a submission's subject names: "" for
// SubjectSubmit, S for tasks.submit.S. ok is false for any other subject,
// and for an S that is not a valid submitter (ValidSubmitter). It does not
// allocate: the master calls it on every submission, before decoding it.
func SubmitterOf(subject string) (submitter string, ok bool) {
	if subject == SubjectSubmit {
		return "", true
	}
	s, ok := strings.CutPrefix(subject, SubjectSubmit+".")
	if !ok || !validSubmitter(s) {
		return "", false
	}
	return s, true
}

// MaxSubmitterLen bounds a submitter's name; a public nkey is 56 bytes.
const MaxSubmitterLen = 64

// ValidSubmitter checks a submitter's name, a NATS user's name or public
// nkey: 1 to MaxSubmitterLen letters, digits, '-' and '_', so that it
// stands in one subject token (tasks.submit.<submitter>) and no wildcard
// or other user's subject can be made of it.
func ValidSubmitter(s string) error {
	switch {
	case s == "":
		return errors.New("the name is empty")
	case len(s) > MaxSubmitterLen:
		return fmt.Errorf("%q is %d bytes, limit %d", truncate(s), len(s), MaxSubmitterLen)
	case !validSubmitter(s):
		return fmt.Errorf("%q has a character other than a letter, digit, '-' or '_': the name stands in the subject %s.<name>", truncate(s), SubjectSubmit)
	}
	return nil
}

func validSubmitter(s string) bool {
	if s == "" || len(s) > MaxSubmitterLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// MasterSubmitter is the submitter of the tasks the master makes itself
// (demo tasks, schedules' ticks), as their records name it. It is not a
// valid submitter: no subject names it, so no client submits as it.
const MasterSubmitter = "@master"

// OwnSubject reports whether subject is one of meshpool's own subjects or
// under one (tasks, results, events). Nothing may be sent there as an
// answer: it would arrive as a submission, a task, a result or an event.
// A reply subject is normally an inbox (_INBOX.…).
func OwnSubject(subject string) bool {
	first, _, _ := strings.Cut(subject, ".")
	switch first {
	case strings.TrimSuffix(SubjectTaskPrefix, "."), SubjectResults, SubjectEvents:
		return true
	}
	return false
}

// InboxPrefix is where the replies to requests of NATS user user (its
// name, or its public nkey) come: _INBOX.<user>. In a secure cluster a
// submitter or observer may read only its own (broker's roles), so no one
// reads another's answers. The Go client uses it when it logs in as a user.
func InboxPrefix(user string) string { return InboxRoot + user }

// InboxRoot is where NATS clients wait for answers by default (nats.go's,
// nats.js's and the nats CLI's inboxes are under it); the master answers
// there only.
const InboxRoot = "_INBOX."

// InInbox reports whether reply is one of user's own inboxes, under
// InboxPrefix(user) and a dot, without building the prefix: the master
// checks every submission of a named submitter.
func InInbox(reply, user string) bool {
	rest, ok := strings.CutPrefix(reply, InboxRoot)
	return ok && len(rest) > len(user) && rest[len(user)] == '.' && rest[:len(user)] == user
}
