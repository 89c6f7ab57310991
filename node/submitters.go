package node

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/meshpool/meshpool/message"
)

// A submitter is who a submission's subject names (message.SubmitterOf): a
// NATS user on tasks.submit.<user>, or "" for every anonymous submission
// on tasks.submit together. The master bounds what each named one holds,
// so that one submitter flooding it cannot fill its bounds for the others:
// the tasks it holds (Config.MaxPendingPerSubmitter) and its submissions
// in progress (slotsPerSubmitter of the master's submitSlots). Anonymous
// submissions, and the master's own tasks, have only the master's bounds:
// in a secure cluster only a node-role user may submit anonymously, and
// in an open one anybody may take any name, so a bound on "" would only
// shrink every open cluster's capacity.

const (
	// submitSlots bounds the submissions the master has in progress at
	// once: decoded and not yet answered (recorded, or refused).
	submitSlots = 4096
	// slotsPerSubmitter bounds one submitter's share of them: a quarter,
	// so a flood from one leaves three quarters to the others.
	slotsPerSubmitter = submitSlots / 4
)

// submitters counts, per submitter, the tasks the master follows (held:
// accepted or being recorded, and not final: the table counts them as it
// follows and unfollows its tasks, under its own lock) and the submissions
// in progress (onSubmit takes a slot with enter before it decodes a
// submission, and gives it back with leave). enter refuses a submission at
// the cost of a map look-up, so a flood is refused near the rate it
// comes. A submitter with neither is forgotten. Safe for concurrent use.
type submitters struct {
	maxHeld  int // tasks one submitter holds at most; 0 for no bound
	maxSlots int // submissions of one submitter in progress at most

	mu sync.Mutex
	by map[string]*submitterLoad
}

// submitterLoad is what one submitter holds.
type submitterLoad struct {
	held     int // tasks followed
	inFlight int // submissions in progress
}

func newSubmitters(maxHeld, maxSlots int) *submitters {
	return &submitters{maxHeld: maxHeld, maxSlots: maxSlots, by: make(map[string]*submitterLoad)}
}

// enter takes a submission slot for submitter, unless it holds its bound
// of tasks or of slots already; then refused says why, as the submitter is
// answered, and no slot is taken.
func (s *submitters) enter(submitter string) (refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loadLocked(submitter)
	switch {
	case s.overLocked(submitter, l):
		return s.fullText(submitter, l.held)
	case l.inFlight >= s.maxSlots && bounded(submitter):
		return fmt.Sprintf("busy: %s has %d submissions in progress, its share of the master's %d; try again later",
			describeSubmitter(submitter), l.inFlight, submitSlots)
	}
	l.inFlight++
	return ""
}

// leave gives back a slot enter took.
func (s *submitters) leave(submitter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.by[submitter]
	l.inFlight--
	s.forgetIdleLocked(submitter, l)
}

// follow counts one more task held by submitter; unfollow one less. The
// table calls them as it follows a task and stops.
func (s *submitters) follow(submitter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(submitter).held++
}

// loadLocked returns what submitter holds, a new entry if nothing yet.
func (s *submitters) loadLocked(submitter string) *submitterLoad {
	l := s.by[submitter]
	if l == nil {
		l = &submitterLoad{}
		s.by[submitter] = l
	}
	return l
}

func (s *submitters) unfollow(submitter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.by[submitter]
	l.held--
	s.forgetIdleLocked(submitter, l)
}

// full reports whether submitter holds its bound of tasks, and if so the
// refusal its submission is answered with.
func (s *submitters) full(submitter string) (refused string, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.by[submitter]
	if l == nil || !s.overLocked(submitter, l) {
		return "", false
	}
	return s.fullText(submitter, l.held), true
}

// held is how many tasks submitter holds.
func (s *submitters) held(submitter string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.by[submitter]; l != nil {
		return l.held
	}
	return 0
}

// overLocked reports whether submitter holds its bound of tasks.
func (s *submitters) overLocked(submitter string, l *submitterLoad) bool {
	return s.maxHeld > 0 && l.held >= s.maxHeld && bounded(submitter)
}

// bounded: named submitters are; the anonymous one and the master's own
// work (nobody's) are not (see submitters).
func bounded(submitter string) bool {
	return submitter != "" && submitter != message.MasterSubmitter
}

func (s *submitters) forgetIdleLocked(submitter string, l *submitterLoad) {
	if l.held == 0 && l.inFlight == 0 {
		delete(s.by, submitter)
	}
}

// fullText is the refusal of a submitter that holds its bound: made for
// every submission of a flood, so without fmt.
func (s *submitters) fullText(submitter string, held int) string {
	return "busy: " + describeSubmitter(submitter) + " holds " + strconv.Itoa(held) +
		" unfinished tasks (--max-pending-per-submitter " + strconv.Itoa(s.maxHeld) + "); try again later"
}

// describeSubmitter names a submitter in an answer or a log line.
func describeSubmitter(submitter string) string {
	if submitter == "" {
		return "the anonymous submitter (" + message.SubjectSubmit + ")"
	}
	return "submitter " + submitter
}
