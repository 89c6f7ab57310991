package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// A fake master answers each batch: the first sending of every third
// submission is refused as temporary, the number 13 for good; a batch is
// never larger than message.MaxBatch.
func TestSubmitManyRetriesTemporaryRefusalsUnderTheSameUUIDs(t *testing.T) {
	b := startNATS(t)
	var mu sync.Mutex
	tried := map[string]int{}
	batches := 0
	answer(t, b, message.SubjectSubmit, func(body []byte) any {
		subs, errs, err := message.DecodeSubmitBatch(body)
		if err != nil {
			return message.SubmitReply{Error: "invalid batch: " + err.Error()}
		}
		mu.Lock()
		defer mu.Unlock()
		batches++
		rs := make(message.SubmitReplies, len(subs))
		for i, s := range subs {
			tried[s.UUID]++
			switch {
			case errs[i] != nil || len(subs) > message.MaxBatch:
				rs[i] = message.SubmitReply{Error: "bad"}
			case s.Number == 13:
				rs[i] = message.SubmitReply{UUID: s.UUID, Error: "invalid task: unlucky"}
			case s.Number%3 == 0 && tried[s.UUID] == 1:
				rs[i] = message.SubmitReply{UUID: s.UUID, Error: "busy", Temporary: true}
			default:
				rs[i] = message.SubmitReply{UUID: s.UUID, Accepted: true, Term: 1}
			}
		}
		return rs
	})
	c := dial(t, b)
	subs := make([]message.Submit, 2500)
	for i := range subs {
		subs[i] = message.Submit{Number: int64(i)}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	replies, err := c.SubmitMany(ctx, subs)
	if !errors.Is(err, client.ErrRefused) || errors.Is(err, client.ErrNotAccepted) || errors.Is(err, client.ErrNoMaster) {
		t.Fatalf("err %v, want ErrRefused alone (the number 13)", err)
	}
	if len(replies) != len(subs) {
		t.Fatalf("%d answers to %d", len(replies), len(subs))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range replies {
		switch {
		case i == 13 && (r.Accepted || r.Error != "invalid task: unlucky"):
			t.Errorf("answer 13: %+v", r)
		case i != 13 && !r.Accepted:
			t.Errorf("answer %d: %+v", i, r)
		case i%3 == 0 && i != 13 && tried[r.UUID] != 2, i%3 != 0 && tried[r.UUID] != 1:
			t.Errorf("submission %d sent %d times under uuid %s", i, tried[r.UUID], r.UUID)
		}
	}
	// 2500 in batches of 1000, then the 834 refused as temporary again.
	if batches != 4 {
		t.Errorf("%d batches sent, want 4", batches)
	}
}

func TestSubmitManyWithNoMasterOrAWholeRefusal(t *testing.T) {
	b := startNATS(t)
	c := dial(t, b)
	subs := []message.Submit{{Number: 1}, {Number: 2}}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	replies, err := c.SubmitMany(ctx, subs)
	if !errors.Is(err, client.ErrNoMaster) || len(replies) != 2 || replies[0].UUID == "" || replies[0].Accepted {
		t.Fatalf("no master: %+v, %v", replies, err)
	}
	answer(t, b, message.SubjectSubmit, func([]byte) any { return message.SubmitReply{Error: "invalid batch: no"} })
	replies, err = c.SubmitMany(t.Context(), subs)
	if !errors.Is(err, client.ErrRefused) || replies[1].Error != "invalid batch: no" || replies[1].UUID == "" {
		t.Fatalf("a whole refusal: %+v, %v", replies, err)
	}
}
