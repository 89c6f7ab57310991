package taskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNoSpace is matched (errors.Is) by the error of every write etcd
// refused because its database reached its space quota and it raised the
// NOSPACE alarm. Nothing is written until an operator frees space: compact,
// defragment, then disarm the alarm (docs/failures.md, "etcd history and space").
var ErrNoSpace = errors.New("etcd is out of space (NOSPACE alarm)")

// DefaultAlarmInterval is how often Alarms lists etcd's alarms by default.
const DefaultAlarmInterval = 3 * time.Second

// Alarms follows etcd's alarms (NOSPACE, CORRUPT) and how full its
// database is, by asking every Interval, so that a node can show them, and
// refuse work before etcd is full, without asking etcd per request. Create
// it with NewAlarms and drive it with Run.
type Alarms struct {
	cli *clientv3.Client
	log *slog.Logger

	// Interval is how often the alarms are listed; set it before Run.
	Interval time.Duration

	mu     sync.Mutex
	active []string // alarm types raised on any member, sorted
	space  Space    // the fullest member's, the last time one answered
}

// Space is how full an etcd member's database is.
type Space struct {
	InUse int64 `json:"in_use"` // bytes the keys, values and history take (what compaction frees)
	Size  int64 `json:"size"`   // bytes of the database file (shrinks only by defragmentation)
	Quota int64 `json:"quota"`  // the file's quota: beyond it, etcd raises NOSPACE and refuses every write
}

// DefaultQuota is etcd's space quota when it is not set (2 GiB); an etcd
// older than 3.6 does not say its quota, and this is assumed.
const DefaultQuota = 2 << 30

// Fill is the share of the quota in use.
func (s Space) Fill() float64 {
	if s.Quota <= 0 {
		return 0
	}
	return float64(s.InUse) / float64(s.Quota)
}

// NewAlarms returns an Alarms that lists the alarms every
// DefaultAlarmInterval. log nil discards.
func NewAlarms(cli *clientv3.Client, log *slog.Logger) *Alarms {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Alarms{cli: cli, log: log, Interval: DefaultAlarmInterval}
}

// Run lists the alarms at once and then every Interval until ctx ends, and
// returns nil. A raised and a cleared alarm are logged once each. While etcd
// cannot be asked, the alarms last seen stand.
func (a *Alarms) Run(ctx context.Context) error {
	t := time.NewTicker(max(a.Interval, time.Millisecond))
	defer t.Stop()
	for {
		a.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *Alarms) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(a.Interval, time.Second))
	defer cancel()
	resp, err := a.cli.AlarmList(ctx)
	if err != nil {
		a.log.Debug("cannot list etcd's alarms", "err", err)
		return
	}
	var now []string
	for _, m := range resp.Alarms {
		if m.Alarm != pb.AlarmType_NONE && !slices.Contains(now, m.Alarm.String()) {
			now = append(now, m.Alarm.String())
		}
	}
	slices.Sort(now)
	space, spaceOK := a.measure(ctx)
	a.mu.Lock()
	before := a.active
	a.active = now
	if spaceOK {
		a.space = space
	}
	a.mu.Unlock()
	for _, al := range now {
		if !slices.Contains(before, al) {
			a.log.Error("etcd raised an alarm: "+describe(al), "alarm", al)
		}
	}
	for _, al := range before {
		if !slices.Contains(now, al) {
			a.log.Info("etcd alarm cleared", "alarm", al)
		}
	}
}

// measure asks every endpoint how full its database is and returns the
// fullest, or false when none answered.
func (a *Alarms) measure(ctx context.Context) (Space, bool) {
	var fullest Space
	ok := false
	for _, ep := range a.cli.Endpoints() {
		st, err := a.cli.Status(ctx, ep)
		if err != nil {
			a.log.Debug("cannot ask etcd how full it is", "endpoint", ep, "err", err)
			continue
		}
		s := Space{InUse: st.DbSizeInUse, Size: st.DbSize, Quota: st.DbSizeQuota}
		if s.Quota <= 0 {
			s.Quota = DefaultQuota
		}
		if !ok || s.Fill() > fullest.Fill() {
			fullest, ok = s, true
		}
	}
	return fullest, ok
}

// Space returns how full the fullest member's database was when last
// asked; the zero Space before any answer.
func (a *Alarms) Space() Space {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.space
}

// Full says why a new durable task should be refused, or "": the fullest
// member's database has limit (0 < limit <= 1) of its quota in use, or its
// file, which only defragmentation shrinks and on which etcd raises
// NOSPACE, has reached half the way from limit to the whole quota (a file
// grows past what is in use when freed pages are too scattered for large
// values). The rest of the quota is kept for what must still be written:
// member registrations, elections, and the moves of tasks already accepted.
func (a *Alarms) Full(limit float64) string {
	s := a.Space()
	if limit <= 0 || limit >= 1 || s.Quota == 0 {
		return ""
	}
	if fileLimit := (1 + limit) / 2; float64(s.Size) >= fileLimit*float64(s.Quota) {
		return fmt.Sprintf("etcd's database file is %d MiB of its %d MiB quota (%.0f%%; --etcd-max-fill %.0f%% leaves the file up to %.0f%%), %d MiB in use: new durable tasks wait until an operator defragments etcd (etcdctl defrag) or gives it more room",
			s.Size>>20, s.Quota>>20, 100*float64(s.Size)/float64(s.Quota), 100*limit, 100*fileLimit, s.InUse>>20)
	}
	if s.Fill() < limit {
		return ""
	}
	return fmt.Sprintf("etcd holds %d MiB of its %d MiB quota in use (%.0f%%, --etcd-max-fill %.0f%%): new durable tasks wait until finished ones expire, or an operator gives etcd more room",
		s.InUse>>20, s.Quota>>20, 100*s.Fill(), 100*limit)
}

// Active returns the alarm types raised now, e.g. ["NOSPACE"]; nil for none.
func (a *Alarms) Active() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.active)
}

// Reason says in one line what the raised alarms stop, or "" for none.
func (a *Alarms) Reason() string {
	al := a.Active()
	if len(al) == 0 {
		return ""
	}
	reasons := make([]string, len(al))
	for i, s := range al {
		reasons[i] = describe(s)
	}
	return strings.Join(reasons, "; ")
}

func describe(alarm string) string {
	switch alarm {
	case pb.AlarmType_NOSPACE.String():
		return ErrNoSpace.Error() + ": no task can be recorded until an operator compacts, defragments and disarms etcd"
	case pb.AlarmType_CORRUPT.String():
		return "etcd reports a corrupt member (CORRUPT alarm)"
	}
	return "etcd alarm " + alarm
}
