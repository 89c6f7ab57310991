package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/message"
)

// An answer is read at most message.MaxSize bytes long (the embedded NATS
// server carries no larger, so only a unit test can send one).
func TestDecodeAnswerBoundsTheSize(t *testing.T) {
	big := `{"tasks":[],"pad":"` + strings.Repeat("x", message.MaxSize) + `"}`
	if _, _, err := decodeAnswer[message.ListReply]([]byte(big)); !errors.Is(err, message.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	reply, st, err := decodeAnswer[message.ListReply]([]byte(`{"tasks":[{"uuid":"a"}],"error":"busy","temporary":true}`))
	if err != nil || len(reply.Tasks) != 1 || st.Error != "busy" || !st.Temporary {
		t.Fatalf("decodeAnswer = %+v, %+v, %v", reply, st, err)
	}
}
