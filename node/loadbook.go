package node

import (
	"math/rand/v2"
	"slices"

	"github.com/meshpool/meshpool/registry"
)

// loadBook is the workers a master may place tasks on, what each runs
// (kinds, slots), and how many of its tasks each holds. Every placement
// goes by its one rule, pick. It is not safe for concurrent use: the task
// table keeps it under its lock.
type loadBook struct {
	workers []registry.Record // the other members; replaced, never changed, on a membership change
	load    map[string]int    // tasks placed per worker; absent when none
	intN    func(n int) int   // the tie-break's randomness (rand.IntN); a test may fix it
}

func newLoadBook() loadBook {
	return loadBook{load: make(map[string]int), intN: rand.IntN}
}

// unbounded stands for the slots of a worker that registered none (a node
// from before slots): its load never fills it.
const unbounded = 1 << 30

// pick returns a worker that runs kind and has a free slot, the least
// loaded relative to its slots, at random among equals; "" when there is
// none. It leaves out the workers in tried (a placement's failed attempts:
// few), and exclude (the worker a task timed out on) unless no other can
// take the task. One pass, no allocation: it runs for every submission.
func (b *loadBook) pick(kind, exclude string, tried []string) string {
	best, bestLoad, bestSlots, ties := "", 0, 1, 0
	excludeFits := false
	for i := range b.workers {
		r := &b.workers[i]
		if !r.Handles(kind) || slices.Contains(tried, r.ID) {
			continue
		}
		l, slots := b.load[r.ID], r.Slots
		if slots <= 0 {
			slots = unbounded
		}
		if l >= slots {
			continue
		}
		if r.ID == exclude {
			excludeFits = true
			continue
		}
		// l/slots against bestLoad/bestSlots, without division.
		switch c := l*bestSlots - bestLoad*slots; {
		case best == "" || c < 0:
			best, bestLoad, bestSlots, ties = r.ID, l, slots, 1
		case c == 0:
			ties++
			if b.intN(ties) == 0 { // keeps each of the ties with equal chance
				best = r.ID
			}
		}
	}
	if best == "" && excludeFits {
		return exclude
	}
	return best
}

// handled reports whether any worker runs kind.
func (b *loadBook) handled(kind string) bool {
	for i := range b.workers {
		if b.workers[i].Handles(kind) {
			return true
		}
	}
	return false
}

// move takes one task's load from worker from ("" for none) to worker to.
func (b *loadBook) move(from, to string) {
	if from == to {
		return
	}
	b.release(from)
	if to != "" {
		b.load[to]++
	}
}

// release takes one task's load off worker w ("" for none).
func (b *loadBook) release(w string) {
	if w == "" {
		return
	}
	if b.load[w]--; b.load[w] <= 0 {
		delete(b.load, w)
	}
}
