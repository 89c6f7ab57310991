package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func startNATS(t *testing.T) *broker.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Name, cfg.Host, cfg.ClientPort, cfg.ClusterPort = "solo", "127.0.0.6", broker.RandomPort, broker.RandomPort
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestSubmitWithNoMasterIsErrNoMaster(t *testing.T) {
	b := startNATS(t)
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Submit(ctx, message.Submit{Number: 1}); !errors.Is(err, client.ErrNoMaster) {
		t.Fatalf("err = %v, want ErrNoMaster", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("gave up after %s, past the deadline", took)
	}
}

// A master that appears during the retries gets the same uuid every time.
func TestSubmitRetriesWithTheSameUUIDUntilAMasterAnswers(t *testing.T) {
	b := startNATS(t)
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := make(chan string, 10)
	go func() {
		time.Sleep(300 * time.Millisecond) // the master shows up late
		_, _ = b.Conn().Subscribe(message.SubjectSubmit, func(m *nats.Msg) {
			var s message.Submit
			_ = json.Unmarshal(m.Data, &s)
			seen <- s.UUID
			body, _ := json.Marshal(message.SubmitReply{UUID: s.UUID, Accepted: true, Term: 1})
			_ = m.Respond(body)
		})
	}()
	reply, err := c.Submit(t.Context(), message.Submit{Number: 7})
	if err != nil || !reply.Accepted {
		t.Fatalf("submit: %+v %v", reply, err)
	}
	if got := <-seen; got != reply.UUID || got == "" {
		t.Fatalf("master saw uuid %q, reply %q", got, reply.UUID)
	}
}

func TestRefusalIsErrRefused(t *testing.T) {
	b := startNATS(t)
	if _, err := b.Conn().Subscribe(message.SubjectSubmit, func(m *nats.Msg) {
		body, _ := json.Marshal(message.SubmitReply{Error: "invalid task: nope"})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Submit(t.Context(), message.Submit{Number: 1}); !errors.Is(err, client.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
}

// A result whose publication the client missed is still returned: Wait asks
// the master again with the same uuid and gets the stored result.
// silentMaster accepts every submission and never publishes a result; a
// uuid submitted again is answered as done, with its result.
func silentMaster(t *testing.T, b *broker.Broker) {
	t.Helper()
	asked := map[string]int{}
	if _, err := b.Conn().Subscribe(message.SubjectSubmit, func(m *nats.Msg) {
		var s message.Submit
		_ = json.Unmarshal(m.Data, &s)
		asked[s.UUID]++
		reply := message.SubmitReply{UUID: s.UUID, Accepted: true, State: message.StatePending, Term: 1}
		if asked[s.UUID] > 1 { // done by now; the result was never published
			now := message.NewTimestamp(time.Now())
			reply.Duplicate, reply.State = true, message.StateDone
			reply.Result = &message.Result{UUID: s.UUID, Executor: "w-00000000", Number: s.Number, Kind: message.KindTriple, Result: message.TripleResult(s.Number), Start: now, Finish: now, Term: 1}
		}
		body, _ := json.Marshal(reply)
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestWaitAsksAgainWhenThePublicationIsMissed(t *testing.T) {
	b := startNATS(t)
	silentMaster(t, b)
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Follow(); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Submit(t.Context(), message.Submit{Number: 14})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := c.Wait(ctx, reply.UUID)
	if err != nil || string(res.Result) != "42" || res.UUID != reply.UUID {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
}

func TestLoadAsksAgainWhenPublicationsAreMissed(t *testing.T) {
	b := startNATS(t)
	silentMaster(t, b)
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rep, err := c.Load(ctx, client.LoadSpec{N: 5, Concurrency: 2, Wait: true})
	if err != nil || rep.Accepted != 5 || rep.Results != 5 || rep.Missing != 0 || rep.ExtraSeen != 0 {
		t.Fatalf("Load = %+v, %v", rep, err)
	}
}

// A master that answers every try with a temporary refusal is not "no
// master": at the deadline Submit returns ErrNotAccepted with the reason.
func TestTemporaryRefusalsUntilTheDeadlineAreErrNotAccepted(t *testing.T) {
	b := startNATS(t)
	const reason = "cannot record the task: etcdserver: mvcc: database space exceeded"
	if _, err := b.Conn().Subscribe(message.SubjectSubmit, func(m *nats.Msg) {
		body, _ := json.Marshal(message.SubmitReply{Error: reason, Temporary: true})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = c.Submit(ctx, message.Submit{Number: 1})
	if !errors.Is(err, client.ErrNotAccepted) || errors.Is(err, client.ErrNoMaster) {
		t.Fatalf("err = %v, want ErrNotAccepted", err)
	}
	if !strings.Contains(err.Error(), "last answer: "+reason) || !strings.Contains(err.Error(), "tries over") {
		t.Fatalf("err %q does not give the tries and the last answer", err)
	}
}

// A result on results that does not answer the submission (another
// number, or not the work rule's answer: anyone may publish there in an
// open cluster) is not taken: Wait returns the master's answer.
func TestWaitIgnoresResultsThatDoNotAnswerTheSubmission(t *testing.T) {
	b := startNATS(t)
	silentMaster(t, b)
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Follow(); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Submit(t.Context(), message.Submit{Number: 14})
	if err != nil {
		t.Fatal(err)
	}
	now := message.NewTimestamp(time.Now())
	for _, forged := range []message.Result{
		{Kind: message.KindTriple, Number: 6, Result: json.RawMessage("18")},  // another number
		{Kind: message.KindTriple, Number: 14, Result: json.RawMessage("99")}, // not the work rule's answer
	} {
		forged.UUID, forged.Executor, forged.Start, forged.Finish, forged.Term = reply.UUID, "x-00000000", now, now, 1
		if err := b.Conn().Publish(message.SubjectResults, forged.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := c.Wait(ctx, reply.UUID)
	if err != nil || res.Number != 14 || string(res.Result) != "42" {
		t.Fatalf("Wait = %+v, %v; want the master's answer 14*3 = 42", res, err)
	}
}

// A client with a NATS user (in its options or its URL) submits on
// tasks.submit.<user> (with an nkey: TestSubmitterOfAnNkey), where a secure cluster lets it and no one else
// submit in its name; one without, or with a name no secure cluster has,
// on tasks.submit.
func TestSubmitsOnTheSubjectOfItsUser(t *testing.T) {
	b := startNATS(t) // open: it takes any credentials
	subjects := make(chan string, 1)
	if _, err := b.Conn().Subscribe(message.SubjectSubmit+".>", func(m *nats.Msg) { subjects <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Conn().Subscribe(message.SubjectSubmit, func(m *nats.Msg) { subjects <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	server := b.ClientURL()
	for _, tt := range []struct {
		name   string
		server string
		opts   []nats.Option
		want   string
	}{
		{"anonymous", server, nil, "tasks.submit"},
		{"a user", server, []nats.Option{nats.UserInfo("alice", "pw")}, "tasks.submit.alice"},
		{"a user in the URL", strings.Replace(server, "nats://", "nats://bob:pw@", 1), nil, "tasks.submit.bob"},
		{"a name that is not one token", server, []nats.Option{nats.UserInfo("a.b", "pw")}, "tasks.submit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(tt.server, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := message.SubmitSubject(c.Submitter()); got != tt.want {
				t.Errorf("Submitter %q submits on %s, want %s", c.Submitter(), got, tt.want)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			_, _ = c.Submit(ctx, message.Submit{Number: 1}) // nobody answers
			select {
			case got := <-subjects:
				if got != tt.want {
					t.Fatalf("submitted on %s, want %s", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no submission arrived")
			}
			for len(subjects) > 0 {
				<-subjects
			}
		})
	}
}
