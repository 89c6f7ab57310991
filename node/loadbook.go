package node

import (
	"math/rand/v2"
	"slices"
)

// loadBook is the workers a master may place tasks on and how many of its
// tasks each holds. Every placement goes by its one rule, pick. It is not
// safe for concurrent use: the task table keeps it under its lock.
type loadBook struct {
	workers []string        // the other members; replaced, never changed, on a membership change
	load    map[string]int  // tasks placed per worker; absent when none
	intN    func(n int) int // the tie-break's randomness (rand.IntN); a test may fix it
}

func newLoadBook() loadBook {
	return loadBook{load: make(map[string]int), intN: rand.IntN}
}

// pick returns the worker with the fewest tasks, at random among equals;
// "" when there is none to pick. It leaves out the workers in tried (a
// placement's failed attempts: few), and exclude (the worker a task timed
// out on) while another worker exists. One pass, no allocation: it runs
// for every submission.
func (b *loadBook) pick(exclude string, tried []string) string {
	best, bestLoad, ties := "", 0, 0
	for _, w := range b.workers {
		if w == exclude && len(b.workers) > 1 || slices.Contains(tried, w) {
			continue
		}
		l := b.load[w]
		switch {
		case best == "" || l < bestLoad:
			best, bestLoad, ties = w, l, 1
		case l == bestLoad:
			ties++
			if b.intN(ties) == 0 { // keeps each of the ties with equal chance
				best = w
			}
		}
	}
	return best
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
