package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// A uuid is the idempotency key whatever its case: the same uuid in upper
// case is answered as a duplicate and the task runs once.
func TestUUIDInAnotherCaseIsTheSameTask(t *testing.T) {
	c := durable(t, nil)
	_, workers := c.startN(2)
	cl := dial(t, workers[0])
	id := uuid.NewString()

	first, err := cl.Submit(t.Context(), message.Submit{UUID: id, Number: 5})
	if err != nil || !first.Accepted || first.Duplicate || first.UUID != id {
		t.Fatalf("first submission: %+v, %v", first, err)
	}
	if res, err := waitResult(t, cl, id); err != nil || string(res.Result) != "15" {
		t.Fatalf("result %+v, %v", res, err)
	}

	// Straight on the subject, so that the master itself sees upper case.
	nc, err := nats.Connect(clientURL(t, workers[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	upper := strings.ToUpper(id)
	testutil.Eventually(t, 10*time.Second, "the upper-case uuid answered with the task's result", func() bool {
		msg, err := nc.Request(message.SubjectSubmit, []byte(`{"uuid":"`+upper+`","number":5}`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		again, err := message.DecodeSubmitReply(msg.Data)
		if err != nil || !again.Accepted || !again.Duplicate || again.UUID != id {
			t.Fatalf("upper-case submission: %s, %v; want a duplicate of %s", msg.Data, err, id)
		}
		return again.State == message.StateDone && again.Result != nil && string(again.Result.Result) == "15"
	})
	// And through the client.
	viaClient, err := cl.Submit(t.Context(), message.Submit{UUID: upper, Number: 5})
	if err != nil || !viaClient.Duplicate || viaClient.UUID != id {
		t.Fatalf("upper-case submission through the client: %+v, %v", viaClient, err)
	}

	completed := int64(0)
	for _, n := range c.running() {
		completed += n.Status().Worker.Completed
	}
	if completed != 1 {
		t.Fatalf("workers completed %d tasks, want 1", completed)
	}
}
