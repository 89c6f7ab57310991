package schedule

import (
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/message"
)

// namespace is the UUID namespace of the tasks schedules submit; never
// change it, or a tick fired before an upgrade would run again after it.
var namespace = uuid.MustParse("b35f4105-5357-4ad8-b4ab-a94bba8c584b")

// TaskUUID is the UUID of the task that schedule name submits at tick, the
// same on every master: a name-based (SHA-1) UUID of name and the tick in
// UTC. Two masters that fire one tick submit one UUID, which the master's
// idempotency runs once.
func TaskUUID(name string, created, tick time.Time) string {
	return uuid.NewSHA1(namespace, []byte(name+"\x00"+created.UTC().Format(time.RFC3339Nano)+"\x00"+tick.UTC().Format(time.RFC3339Nano))).String()
}

// Submit returns the submission of tick's task: its UUID is
// TaskUUID(s.Name, s.Created, tick), its kind, payload, durability and options are
// s's, and it runs at once.
func (s Schedule) Submit(tick time.Time) message.Submit {
	kind, payload, number := message.NormalizeWork(s.Kind, s.Payload, 0)
	opts := s.Options
	opts.RunAt, opts.Delay = message.Timestamp{}, 0
	return message.Submit{
		UUID:       TaskUUID(s.Name, s.Created, tick),
		Kind:       kind,
		Payload:    payload,
		Number:     number,
		Durability: s.Durability,
		Options:    opts,
	}
}
