package node

import (
	"hash/maphash"
	"time"
)

// forgotten remembers, approximately and in little memory, which uuids the
// done index forgot before their time ran out: a Bloom filter per
// generation of forgetting. mayContain is never false for a uuid added and
// not yet expired; it is true for about 1 % of other uuids. So the master
// looks up in etcd only the submissions that may be re-submissions of a
// forgotten task, instead of every submission once the index is full.
type forgotten struct {
	gens []*bloom // oldest first; the last one takes new uuids
	seed maphash.Seed
}

// Each generation holds up to bloomCapacity uuids at about 1 % false
// positives: 10 bits (1.25 MB for the generation) and 7 probes per uuid.
const (
	bloomCapacity = 1 << 20
	bloomBits     = 10 * bloomCapacity
	bloomProbes   = 7
)

type bloom struct {
	bits []uint64
	n    int
	last time.Time // the latest expiry of a uuid in it: dropped after that
}

func newForgotten() *forgotten { return &forgotten{seed: maphash.MakeSeed()} }

// add remembers id until until.
func (f *forgotten) add(id string, until time.Time) {
	if len(f.gens) == 0 || f.gens[len(f.gens)-1].n >= bloomCapacity {
		f.gens = append(f.gens, &bloom{bits: make([]uint64, bloomBits/64)})
	}
	g := f.gens[len(f.gens)-1]
	for _, i := range f.probes(id) {
		g.bits[i/64] |= 1 << (i % 64)
	}
	g.n++
	if until.After(g.last) {
		g.last = until
	}
}

// mayContain reports whether id may have been added and not expired by now.
func (f *forgotten) mayContain(id string, now time.Time) bool {
	for len(f.gens) > 0 && !f.gens[0].last.After(now) {
		f.gens[0] = nil
		f.gens = f.gens[1:]
	}
	if len(f.gens) == 0 {
		return false
	}
	probes := f.probes(id)
	for _, g := range f.gens {
		if g.has(probes) {
			return true
		}
	}
	return false
}

func (g *bloom) has(probes [bloomProbes]uint64) bool {
	for _, i := range probes {
		if g.bits[i/64]&(1<<(i%64)) == 0 {
			return false
		}
	}
	return true
}

// probes are the bit positions of id: double hashing of one 64-bit hash.
func (f *forgotten) probes(id string) [bloomProbes]uint64 {
	h := maphash.String(f.seed, id)
	h1, h2 := h, h>>32|h<<32|1
	var p [bloomProbes]uint64
	for i := range p {
		p[i] = (h1 + uint64(i)*h2) % bloomBits
	}
	return p
}
