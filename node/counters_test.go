package node

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/operations.md's counter table from counters")

const (
	opsDoc      = "../docs/operations.md"
	tableBegin  = "<!-- counters: begin; made from node/counters.go by go test ./node -run TestCounterTableIsDocumented -update -->\n"
	tableEnd    = "<!-- counters: end -->\n"
	statusProbe = 7_000_000
)

// statusPaths returns where /status shows each counter ("" for none), as
// dotted JSON paths, and every int64 field /status has.
func statusPaths(t *testing.T, cs []counter) (paths []string, fields []string) {
	var s Status
	for i, c := range cs {
		if c.field != nil {
			*c.field(&s) = statusProbe + int64(i)
		}
	}
	body, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(body, &tree); err != nil {
		t.Fatal(err)
	}
	paths = make([]string, len(cs))
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(prefix+k+".", x)
			}
		case float64:
			path := strings.TrimSuffix(prefix, ".")
			fields = append(fields, path)
			if i := int(v) - statusProbe; i >= 0 && i < len(cs) {
				paths[i] = path
			}
		}
	}
	walk("", tree)
	return paths, fields
}

// intFields lists Status's int64 fields as dotted JSON paths, from its type.
func intFields(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch f.Type.Kind() {
		case reflect.Int64:
			out = append(out, prefix+name)
		case reflect.Struct:
			if f.Type.PkgPath() == t.PkgPath() {
				out = append(out, intFields(f.Type, prefix+name+".")...)
			}
		}
	}
	return out
}

func renderCounters(cs []counter, paths []string) string {
	var b strings.Builder
	b.WriteString(tableBegin)
	b.WriteString("| metric | type | in /status | what it counts |\n|---|---|---|---|\n")
	for i, c := range cs {
		kind, where := "counter", "—"
		if c.gauge {
			kind = "gauge"
		}
		if paths[i] != "" {
			where = "`" + paths[i] + "`"
		}
		fmt.Fprintf(&b, "| `meshpool_%s` | %s | %s | %s |\n", c.metric, kind, where, c.help)
	}
	b.WriteString(tableEnd)
	return b.String()
}

// Every number /status shows comes from counters, each once; the
// metrics and docs/operations.md's table are made from the same list.
func TestCounterTableIsDocumented(t *testing.T) {
	cs := counters
	paths, _ := statusPaths(t, cs)
	seen := map[string]bool{}
	for i, c := range cs {
		if seen[c.metric] {
			t.Errorf("meshpool_%s listed twice", c.metric)
		}
		seen[c.metric] = true
		if c.field != nil && paths[i] == "" {
			t.Errorf("meshpool_%s: its /status field is not found in the JSON", c.metric)
		}
		if c.gauge == strings.HasSuffix(c.metric, "_total") {
			t.Errorf("meshpool_%s: a counter's name ends in _total, a gauge's does not", c.metric)
		}
	}
	// Status's own int64 fields that are not counters.
	notCounters := []string{"dispatch.term", "worker.newest_term"}
	for _, f := range intFields(reflect.TypeFor[Status](), "") {
		if !slices.Contains(paths, f) && !slices.Contains(notCounters, f) {
			t.Errorf("/status field %s is in no counter: add it to counters", f)
		}
	}

	doc, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(doc, []byte(tableBegin)), bytes.Index(doc, []byte(tableEnd))
	if begin < 0 || end < begin {
		t.Fatalf("%s has no counter table between %q and %q", opsDoc, tableBegin, tableEnd)
	}
	want := renderCounters(cs, paths)
	got := string(doc[begin : end+len(tableEnd)])
	if got == want {
		return
	}
	if *update {
		out := append(append(append([]byte(nil), doc[:begin]...), want...), doc[end+len(tableEnd):]...)
		if err := os.WriteFile(opsDoc, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's counter table is not counters; run go test ./node -run TestCounterTableIsDocumented -update\ngot:\n%s\nwant:\n%s", opsDoc, got, want)
}
