package schedule_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshpool/meshpool/schedule"
)

func TestNext(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cron, after, want string
	}{
		{"*/15 * * * *", "2025-03-01T12:00:30.123Z", "2025-03-01T12:15:00Z"},
		{"*/15 * * * *", "2025-03-01T12:15:00Z", "2025-03-01T12:30:00Z"}, // strictly after
		{"@hourly", "2025-03-01T12:59:59.999Z", "2025-03-01T13:00:00Z"},
		{"0 9 * * 1-5", "2025-03-01T12:00:00Z", "2025-03-03T09:00:00Z"}, // Saturday → Monday
		// In UTC without a zone, whatever the time's location.
		{"0 9 * * *", "2025-03-01T12:00:00-05:00", "2025-03-02T09:00:00Z"},
		{"CRON_TZ=Europe/Paris 0 9 * * *", "2025-03-01T12:00:00Z", "2025-03-02T08:00:00Z"},
		{"CRON_TZ=Europe/Paris 0 9 * * *", "2025-07-01T12:00:00Z", "2025-07-02T07:00:00Z"},
		// @every is a grid from Created (2025-03-01T12:00:30.123Z) to the second.
		{"@every 5m", "2025-03-01T12:00:30.123Z", "2025-03-01T12:05:30Z"},
		{"@every 5m", "2025-03-01T12:07:00Z", "2025-03-01T12:10:30Z"},
		{"@every 5m", "2025-03-01T12:10:30Z", "2025-03-01T12:15:30Z"},
		{"@every 5m", "2025-03-01T12:10:29.999Z", "2025-03-01T12:10:30Z"},
		{"@every 5m", "2024-01-01T00:00:00Z", "2025-03-01T12:05:30Z"},
		{"not cron", "2025-03-01T12:00:00Z", "0001-01-01T00:00:00Z"},
	} {
		t.Run(tc.cron+" after "+tc.after, func(t *testing.T) {
			got := valid(tc.cron).Next(at(t, tc.after))
			if want := at(t, tc.want); !got.Equal(want) {
				t.Fatalf("Next = %s, want %s", got, want)
			}
		})
	}
	after := at(t, "2025-03-01T07:00:00-05:00").In(ny)
	if got := valid("@hourly").Next(after); got.Location() != ny {
		t.Errorf("Next(%s) = %s: want it in the location of after", after, got)
	}
}

func TestDue(t *testing.T) {
	hourly := valid("0 * * * *") // created 2025-03-01T12:00:30.123Z
	fired := hourly
	fired.Last = at(t, "2025-03-01T13:00:00Z")
	for _, tc := range []struct {
		name    string
		s       schedule.Schedule
		now     string
		tick    string // "" for not due
		skipped int
	}{
		{"no tick yet", hourly, "2025-03-01T12:59:59.999Z", "", 0},
		{"before created", hourly, "2025-03-01T11:00:00Z", "", 0},
		{"on the tick", hourly, "2025-03-01T13:00:00Z", "2025-03-01T13:00:00Z", 0},
		{"one tick due", hourly, "2025-03-01T13:00:10Z", "2025-03-01T13:00:00Z", 0},
		{"many missed: the latest fires", hourly, "2025-03-01T17:20:00Z", "2025-03-01T17:00:00Z", 4},
		{"fired: not due again", fired, "2025-03-01T13:59:59Z", "", 0},
		{"fired: due at the next tick", fired, "2025-03-01T14:00:00Z", "2025-03-01T14:00:00Z", 0},
		{"fired, then missed", fired, "2025-03-02T13:30:00Z", "2025-03-02T13:00:00Z", 23},
		{"a year of minutes", valid("* * * * *"), "2026-03-01T10:20:30Z", "2026-03-01T10:20:00Z", schedule.MaxSkipped},
		// Without the bound these would take hours or years.
		{"centuries of seconds", valid("@every 1s"), "9999-12-31T23:59:59.5Z", "9999-12-31T23:59:59Z", schedule.MaxSkipped},
		{"centuries of minutes", valid("* * * * *"), "9999-12-31T23:59:59Z", "9999-12-31T23:59:00Z", schedule.MaxSkipped},
		{"invalid cron", valid("soon"), "2026-01-01T00:00:00Z", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tick, skipped, ok := tc.s.Due(at(t, tc.now))
			if tc.tick == "" {
				if ok {
					t.Fatalf("Due = %s, %d skipped; want nothing due", tick, skipped)
				}
				return
			}
			if want := at(t, tc.tick); !ok || !tick.Equal(want) || skipped != tc.skipped {
				t.Fatalf("Due = %s, %d skipped, %t; want %s, %d skipped", tick, skipped, ok, want, tc.skipped)
			}
		})
	}
}

// TestDueAgainstWalk checks Due, around the MaxSkipped bound where it
// switches from walking to bisection, against a plain walk of Next.
func TestDueAgainstWalk(t *testing.T) {
	for _, cron := range []string{"* * * * *", "*/7 9-17 * * 1-5", "@every 13s", "CRON_TZ=Europe/Paris 30 2 * * *"} {
		s := valid(cron)
		ticks := []time.Time{s.Next(s.Created)}
		for len(ticks) < schedule.MaxSkipped+5 {
			ticks = append(ticks, s.Next(ticks[len(ticks)-1]))
		}
		for _, n := range []int{1, 2, 500, schedule.MaxSkipped, schedule.MaxSkipped + 1, schedule.MaxSkipped + 2, schedule.MaxSkipped + 4} {
			for _, d := range []time.Duration{0, time.Second} { // now on the tick, or just after
				t.Run(fmt.Sprintf("%s/%d ticks+%s", cron, n, d), func(t *testing.T) {
					want := ticks[n-1]
					tick, skipped, ok := s.Due(want.Add(d))
					if !ok || !tick.Equal(want) || skipped != min(n-1, schedule.MaxSkipped) {
						t.Fatalf("Due = %s, %d skipped, %t; want %s, %d skipped", tick, skipped, ok, want, min(n-1, schedule.MaxSkipped))
					}
				})
			}
		}
	}
}

// After a fire that skipped ticks, the ticks stay on their grid: @every's
// from Created, not from when a master looked.
func TestDueKeepsTheGrid(t *testing.T) {
	s := valid("@every 10m") // created 2025-03-01T12:00:30.123Z
	tick, skipped, ok := s.Due(at(t, "2025-03-01T13:05:00Z"))
	if want := at(t, "2025-03-01T13:00:30Z"); !ok || !tick.Equal(want) || skipped != 5 {
		t.Fatalf("Due = %s, %d skipped, %t; want %s, 5 skipped", tick, skipped, ok, want)
	}
	s.Last = tick
	if got, want := s.Next(at(t, "2025-03-01T13:05:00Z")), at(t, "2025-03-01T13:10:30Z"); !got.Equal(want) {
		t.Fatalf("Next = %s, want %s", got, want)
	}
}
