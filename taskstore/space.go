package taskstore

import (
	"context"
	"errors"
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

// Alarms follows etcd's alarms (NOSPACE, CORRUPT) by listing them every
// Interval, so that a node can show them without asking etcd per request.
// Create it with NewAlarms and drive it with Run.
type Alarms struct {
	cli *clientv3.Client
	log *slog.Logger

	// Interval is how often the alarms are listed; set it before Run.
	Interval time.Duration

	mu     sync.Mutex
	active []string // alarm types raised on any member, sorted
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
	a.mu.Lock()
	before := a.active
	a.active = now
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
