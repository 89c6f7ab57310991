package message

import "strings"

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

// SubjectSubmit is where any client submits a task; the master answers.
const SubjectSubmit = "tasks.submit"

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
func InboxPrefix(user string) string { return "_INBOX." + user }
