package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// One forged task with a huge term sent to every node must not make them
// refuse the real master's tasks, nor the next master's.
func TestForgedTermDoesNotStopTheWorkers(t *testing.T) {
	c := durable(t, nil)
	master, _ := c.startN(3)
	term := master.Status().Dispatch.Term

	forge := func(n *node.Node) {
		t.Helper()
		nc, err := nats.Connect(clientURL(t, n))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		task := message.Task{UUID: uuid.NewString(), Executor: n.ID(), Number: 1, Term: 1 << 62}
		msg, err := nc.Request(message.TaskSubject(n.ID()), task.AppendJSON(nil), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := message.DecodeAck(msg.Data)
		if err != nil || ack.Accepted || !strings.Contains(ack.Reason, "is not the current master's") || ack.Term != term {
			t.Fatalf("%s: forged term: ack %+v, %v; want refused, term still %d", n.ID(), ack, err, term)
		}
	}
	for _, n := range c.running() {
		forge(n)
		if got := n.Status().Worker.Term; got != term {
			t.Fatalf("%s: worker term %d after a forged task, want %d", n.ID(), got, term)
		}
		if got := n.Status().Worker.Refused; got != 1 {
			t.Fatalf("%s: refused %d, want 1", n.ID(), got)
		}
	}

	submitAndWait := func(via *node.Node, number int64) {
		t.Helper()
		cl := dial(t, via)
		reply, err := cl.Submit(t.Context(), message.Submit{Number: number})
		if err != nil || !reply.Accepted {
			t.Fatalf("submit: %+v, %v", reply, err)
		}
		if res, err := waitResult(t, cl, reply.UUID); err != nil || string(res.Result) != string(message.TripleResult(number)) {
			t.Fatalf("result %+v, %v", res, err)
		}
	}
	for i := range 3 {
		submitAndWait(master, int64(i))
	}

	// A new master: its tasks are taken at once.
	c.stop(master.ID())
	next := c.waitConverged(15 * time.Second)
	if got := next.Status().Dispatch.Term; got <= term {
		t.Fatalf("new master's term %d, want above %d", got, term)
	}
	for i := range 3 {
		submitAndWait(next, int64(10+i))
	}
	for _, n := range c.running() {
		if got := n.Status().Worker.Refused; got != 1 {
			t.Fatalf("%s: refused %d tasks, want only the forged one", n.ID(), got)
		}
	}
}
