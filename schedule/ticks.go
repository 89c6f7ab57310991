package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MaxSkipped caps the skipped ticks Due counts, and so its work: it walks
// at most MaxSkipped ticks one by one, then finds the latest by bisection.
const MaxSkipped = 1000

// Next returns the first tick strictly after after, in after's location;
// zero if Cron does not parse or fires no more (robfig/cron looks five
// years ahead at most).
func (s Schedule) Next(after time.Time) time.Time {
	t, err := parse(s.Cron, s.Created)
	if err != nil {
		return time.Time{}
	}
	return t.next(after)
}

// Due applies the catch-up rule at now. The ticks considered are those
// after Last, or after Created before the first fire. If none is at or
// before now, ok is false: nothing to fire yet. Otherwise tick is the
// latest of them at or before now, the one to fire, once; the earlier ones
// are not replayed but counted in skipped, at most MaxSkipped (a count of
// MaxSkipped means at least that many). Due costs at most MaxSkipped plus
// about 70 steps of the cron's Next, however long no master ran.
func (s Schedule) Due(now time.Time) (tick time.Time, skipped int, ok bool) {
	t, err := parse(s.Cron, s.Created)
	if err != nil {
		return time.Time{}, 0, false
	}
	since := s.Created
	if s.Last.After(since) {
		since = s.Last
	}
	tick = t.next(since)
	if tick.IsZero() || tick.After(now) {
		return time.Time{}, 0, false
	}
	for ; skipped < MaxSkipped; skipped++ {
		n := t.next(tick)
		if n.IsZero() || n.After(now) {
			return tick, skipped, true
		}
		tick = n
	}
	return t.latest(tick, now), MaxSkipped, true
}

// ticks are the instants a cron expression fires at.
type ticks struct {
	spec cron.Schedule // a standard expression's, in its zone; nil for @every
	// @every's ticks are anchor + k·every, k ≥ 1: a grid that does not
	// depend on when a master looks. anchor is Created in Unix seconds.
	every  int64 // seconds
	anchor int64
}

// next returns the first tick strictly after after, zero if none.
func (t ticks) next(after time.Time) time.Time {
	if t.spec != nil {
		n := t.spec.Next(after)
		if !n.After(after) { // zero: none within five years
			return time.Time{}
		}
		return n
	}
	k, x := int64(1), after.Unix()
	if x >= t.anchor {
		k = (x-t.anchor)/t.every + 1
	}
	return time.Unix(t.anchor+k*t.every, 0).In(after.Location())
}

// latest returns the latest tick at or before now, given tick, one at or
// before now. It bisects on whole seconds (every tick is on one), so it
// calls next about log2(now - tick in seconds) times.
func (t ticks) latest(tick, now time.Time) time.Time {
	// next(lo) ≤ now < next(hi): the latest tick is next(lo) once hi = lo + 1.
	lo, hi := tick.Unix()-1, now.Unix()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if n := t.next(time.Unix(mid, 0)); !n.IsZero() && !n.After(now) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return t.next(time.Unix(lo, 0).In(now.Location()))
}

// parse reads a cron expression (doc.go) as ticks; created anchors
// @every's. Its errors say what is wrong with expr, for Validate.
func parse(expr string, created time.Time) (t ticks, err error) {
	switch {
	case expr == "":
		return ticks{}, fmt.Errorf("cron is empty")
	case len(expr) > MaxCronLen:
		return ticks{}, fmt.Errorf("cron %q is %d bytes, limit %d", truncate(expr), len(expr), MaxCronLen)
	}
	loc, body, err := cutZone(expr)
	if err != nil {
		return ticks{}, err
	}
	if d, ok := strings.CutPrefix(body, "@every "); ok {
		every, err := time.ParseDuration(strings.TrimSpace(d))
		switch {
		case err != nil:
			return ticks{}, fmt.Errorf("cron %q: %w", truncate(expr), err)
		case every < time.Second || every%time.Second != 0:
			return ticks{}, fmt.Errorf("cron %q: @every takes whole seconds, at least 1s", truncate(expr))
		}
		return ticks{every: int64(every / time.Second), anchor: created.Unix()}, nil
	}
	defer func() {
		// robfig/cron v3.0.1 panics on some input (a zone with nothing
		// after it; cutZone refuses that one): a client's expression must
		// not take the master down.
		if p := recover(); p != nil {
			t, err = ticks{}, fmt.Errorf("cron %q does not parse: %v", truncate(expr), p)
		}
	}()
	sched, err := cron.ParseStandard(body)
	if err != nil {
		return ticks{}, fmt.Errorf("cron %q: %w", truncate(expr), err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return ticks{}, fmt.Errorf("cron %q: not a standard expression", truncate(expr))
	}
	// Without a zone robfig/cron reads the expression in the zone of the
	// time it is given: a master's local time. Ours is loc, UTC by default.
	spec.Location = loc
	return ticks{spec: spec}, nil
}

// cutZone splits a CRON_TZ=Zone or TZ=Zone prefix off expr: the zone is
// UTC without one. It refuses Local, which differs from master to master.
func cutZone(expr string) (*time.Location, string, error) {
	rest, ok := strings.CutPrefix(expr, "CRON_TZ=")
	if !ok {
		if rest, ok = strings.CutPrefix(expr, "TZ="); !ok {
			return time.UTC, strings.TrimSpace(expr), nil
		}
	}
	name, body, ok := strings.Cut(rest, " ")
	body = strings.TrimSpace(body)
	switch {
	case !ok || body == "":
		return nil, "", fmt.Errorf("cron %q: a zone needs an expression after it", truncate(expr))
	case name == "":
		return nil, "", fmt.Errorf("cron %q: the zone is empty", truncate(expr))
	case name == "Local":
		return nil, "", fmt.Errorf("cron %q: zone Local differs from master to master: name one, such as UTC or Europe/Paris", truncate(expr))
	case strings.HasPrefix(body, "CRON_TZ=") || strings.HasPrefix(body, "TZ="):
		return nil, "", fmt.Errorf("cron %q: one zone at most", truncate(expr))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, "", fmt.Errorf("cron %q: zone %q: %w", truncate(expr), truncate(name), err)
	}
	return loc, body, nil
}
