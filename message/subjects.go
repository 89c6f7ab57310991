package message

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
