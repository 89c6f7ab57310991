package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// The master answers only where an answer belongs. A submission whose reply
// subject is one of meshpool's own is dropped unanswered and counted: its
// answer would come back as a submission (a phantom task), a task, a result
// or an event. A submission with no reply subject is taken, not answered.
func TestSubmissionWithOurSubjectAsReplyIsDropped(t *testing.T) {
	c := durable(t, nil)
	master, workers := c.startN(2)
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The master takes submissions once it answers one (an invalid one:
	// nothing is recorded).
	testutil.Eventually(t, 10*time.Second, "the master answers", func() bool {
		_, err := nc.Request(message.SubjectSubmit, []byte(`{"number":"x"}`), time.Second)
		return err == nil
	})
	refused := master.Status().Dispatch.Refused
	// What arrives on our subjects besides what the test sends.
	seen := make(chan *nats.Msg, 100)
	sub, err := nc.ChanSubscribe(">", seen)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	replies := []string{message.SubjectSubmit, message.TaskSubject(workers[0].ID()), "tasks.anything",
		message.SubjectResults, message.SubjectEvents, "orders.created", "_INBOXX.x"}
	bodies := []string{`{"number":"not a number"}`, `{"number":5}`}
	for _, reply := range replies {
		for _, body := range bodies {
			if err := nc.PublishMsg(&nats.Msg{Subject: message.SubjectSubmit, Reply: reply, Data: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A named submitter's answers go to its own inboxes only
	// (_INBOX.<submitter>.), not into another's, nor the default ones.
	for _, reply := range []string{"_INBOX.bob.x", "_INBOX.x", "_INBOX.alicex.y"} {
		if err := nc.PublishMsg(&nats.Msg{Subject: message.SubmitSubject("alice"), Reply: reply, Data: []byte(`{"number":5}`)}); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(len(replies)*len(bodies) + 3)
	testutil.Eventually(t, 5*time.Second, "every submission dropped", func() bool { return master.Status().Dispatch.BadReplies >= want })
	if got := master.Status().Dispatch.BadReplies; got != want {
		t.Fatalf("%d submissions dropped, want %d", got, want)
	}
	// A submission without a reply subject is taken: once it is recorded,
	// everything sent before it has been handled.
	const quiet = "0b5f0000-0000-4000-8000-0000000000aa"
	if err := nc.Publish(message.SubjectSubmit, []byte(`{"uuid":"`+quiet+`","number":6}`)); err != nil {
		t.Fatal(err)
	}
	recorded(t, c, quiet)
	resp, err := c.cli.Get(t.Context(), keyspace.Tasks(c.cfg.Prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("%d task records in etcd, want 1 (%v)", resp.Count, err)
	}
	if s := master.Status().Dispatch; s.Accepted != 1 || s.Refused != refused {
		t.Fatalf("accepted %d, refused %d: want 1 and %d", s.Accepted, s.Refused, refused)
	}
	for {
		select {
		case msg := <-seen:
			if msg.Subject == message.SubjectSubmit && msg.Reply == "" && string(msg.Data) != `{"uuid":"`+quiet+`","number":6}` {
				t.Fatalf("an answer came in as a submission: %s", msg.Data)
			}
		default:
			return
		}
	}
}

// Nor does the master answer into its own request inbox, where its
// workers' acks come: a get or a submission naming it as the reply
// subject is dropped and counted, and the master's placements go on.
func TestRequestWithTheMastersInboxAsReplyIsDropped(t *testing.T) {
	c := durable(t, nil)
	master, workers := c.startN(2)
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The master's inbox: the reply subject of a task it sends.
	sendings := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe(message.TaskSubject(workers[0].ID()), sendings)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, master)
	if _, err := cl.Submit(t.Context(), message.Submit{Number: 5}); err != nil {
		t.Fatal(err)
	}
	var inbox string
	select {
	case m := <-sendings:
		inbox = m.Reply
	case <-time.After(10 * time.Second):
		t.Fatal("no task sent")
	}
	_ = sub.Unsubscribe()
	before := master.Status().Dispatch.BadReplies
	reply := inbox[:strings.LastIndexByte(inbox, '.')+1] + "forged"
	for _, subject := range []string{message.SubjectGet, message.SubjectSubmit} {
		body := `{"uuid":"0b5f0000-0000-4000-8000-0000000000ab"}`
		if subject == message.SubjectSubmit {
			body = `{"number":7}`
		}
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "both dropped", func() bool { return master.Status().Dispatch.BadReplies == before+2 })
}
