package message_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/message"
)

func TestDecodeSubmitBatch(t *testing.T) {
	const id = "00000000-0000-4000-8000-00000000000A"
	many := "[" + strings.Repeat(`{"number":1},`, message.MaxBatch) + `{"number":1}]`
	for _, tt := range []struct {
		name, body string
		whole      string // the whole batch's error, or ""
		bad        []int  // the submissions refused alone
	}{
		{"two", ` [{"number":1},{"kind":"k","payload":{"a":1},"durability":"none"}]`, "", nil},
		{"one bad", `[{"number":1},{"number":"x"},{"kind":"k","extra":1},{}]`, "", []int{1, 2, 3}},
		{"not an array", `[{"number":1}`, "malformed", nil},
		{"empty", `[]`, "empty batch", nil},
		{"too many", many, "limit 1000", nil},
		{"a uuid twice", `[{"uuid":"` + id + `","number":1},{"uuid":"` + strings.ToLower(id) + `","number":1}]`, "given twice", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !message.IsBatch([]byte(tt.body)) {
				t.Fatal("IsBatch false")
			}
			subs, errs, err := message.DecodeSubmitBatch([]byte(tt.body))
			if tt.whole != "" {
				if err == nil || !strings.Contains(err.Error(), tt.whole) {
					t.Fatalf("err %v, want one with %q", err, tt.whole)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range subs {
				bad := false
				for _, b := range tt.bad {
					bad = bad || b == i
				}
				if (errs[i] != nil) != bad {
					t.Errorf("submission %d: err %v, want refused %v", i, errs[i], bad)
				}
			}
		})
	}
	if message.IsBatch([]byte(` {"number":1}`)) {
		t.Error("IsBatch true for a single submission")
	}
}

func TestDecodeSubmitReplies(t *testing.T) {
	rs := message.SubmitReplies{{UUID: "00000000-0000-4000-8000-00000000000a", Accepted: true}, {Error: "busy", Temporary: true}}
	body := rs.AppendJSON(nil)
	got, whole, err := message.DecodeSubmitReplies(body, 2)
	if err != nil || len(got) != 2 || !got[0].Accepted || !got[1].Temporary || whole.Error != "" {
		t.Fatalf("%s: %+v %+v %v", body, got, whole, err)
	}
	if _, _, err := message.DecodeSubmitReplies(body, 3); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("2 answers to 3: %v, want ErrInvalid", err)
	}
	got, whole, err = message.DecodeSubmitReplies([]byte(`{"accepted":false,"error":"invalid batch: empty"}`), 2)
	if err != nil || got != nil || whole.Error != "invalid batch: empty" {
		t.Errorf("a whole refusal: %+v %+v %v", got, whole, err)
	}
	if _, _, err := message.DecodeSubmitReplies([]byte(`{"accepted":true,"uuid":"00000000-0000-4000-8000-00000000000a"}`), 2); err == nil {
		t.Error("one acceptance for a batch taken")
	}
	if _, _, err := message.DecodeSubmitReplies([]byte(`[{"accepted":false}]`), 1); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("a refusal without its error: %v", err)
	}
	subs := []message.Submit{{Number: 1}, {Kind: "k", Payload: []byte(`"x"`)}}
	back, errs, err := message.DecodeSubmitBatch(message.AppendSubmitBatch(nil, subs))
	if err != nil || len(back) != 2 || errs[0] != nil || errs[1] != nil || back[1].Kind != "k" {
		t.Errorf("AppendSubmitBatch does not decode: %+v %v %v", back, errs, err)
	}
}
