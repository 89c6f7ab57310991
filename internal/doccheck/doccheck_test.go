package doccheck

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestRepositoryLinks is the check `make test` runs: every relative link in
// the repository's markdown resolves.
func TestRepositoryLinks(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := Root(wd)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"README.md", "docs/configuration.md"} {
		if !contains(files, want) {
			t.Fatalf("%s not among the markdown files found under %s: %v", want, root, files)
		}
	}
	problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d markdown files checked", len(files))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLinks(t *testing.T) {
	src := strings.Join([]string{
		"# Title", // 1
		"",        // 2
		"See [a](docs/a.md) and ![img](pic.png \"t\").",                     // 3
		"Web [x](https://example.com), [m](mailto:a@b.c), [p](//host/x).",   // 4
		"Same file [s](#title), nested [t](a_(b).md), <[ang](<sp ace.md>)>", // 5
		"`[code](nope.md)` and ``[code2](`nope2.md`)``",                     // 6
		"",                          // 7
		"```sh",                     // 8
		"[fenced](nope3.md)",        // 9
		"# not a heading",           // 10
		"```",                       // 11
		"text [across",              // 12
		"lines](docs/b.md#x) `span", // 13
		"[still code](nope4.md)` after [z](z.md)", // 14
		"",                           // 15
		"[ref]: docs/ref.md",         // 16
		"[web]: https://example.com", // 17
		"a ] (not) link and [not](",  // 18
	}, "\n")
	got := Links(src)
	want := []Link{
		{3, "docs/a.md"}, {3, "pic.png"},
		{5, "#title"}, {5, "a_(b).md"}, {5, "sp ace.md"},
		{13, "docs/b.md#x"}, {14, "z.md"},
		{16, "docs/ref.md"},
	}
	sortLinks(got)
	sortLinks(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Links:\n got %v\nwant %v", got, want)
	}
}

func sortLinks(l []Link) {
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j].Line < l[i].Line || l[j].Line == l[i].Line && l[j].Target < l[i].Target {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Guarantees":                               "guarantees",
		"How it improves on the article's demo":    "how-it-improves-on-the-articles-demo",
		"One command: `make demo`":                 "one-command-make-demo",
		"Try it: `meshpool dev --secure`":          "try-it-meshpool-dev---secure",
		"Three nodes against a real etcd, by hand": "three-nodes-against-a-real-etcd-by-hand",
		"Join and leave, 3 nodes":                  "join-and-leave-3-nodes",
		"snake_case and **bold** [link](x.md)":     "snake_case-and-bold-link",
		"Fail-over → état 2×":                      "fail-over--état-2",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

func TestAnchors(t *testing.T) {
	src := "# Top\n\n## Part\n\n## Part\n\n```\n# Fenced\n```\n\nSetext\n------\n\n- item\n---\n\n### Closed ###\n\n<a name=\"here\"></a>\n"
	got := Anchors(src)
	want := map[string]bool{"top": true, "part": true, "part-1": true, "setext": true, "closed": true, "here": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
}

// TestCheckFindsBrokenLinks proves the check can fail: a made-up
// repository with one good link of each kind and one broken link of each
// kind, each broken one reported with its file and line.
func TestCheckFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example\n")
	write("README.md", strings.Join([]string{
		"# Example",
		"",
		"## Quick start",
		"",
		"Good: [docs](docs/ops.md), [anchor](docs/ops.md#metrics), [here](#quick-start), [dir](docs/).",
		"Bad file: [gone](docs/gone.md).",
		"Bad anchor: [sec](docs/ops.md#security) and [self](#quickstart).",
		"Outside: [up](../elsewhere.md).",
		"",
		"```",
		"[in a fence](docs/gone.md)",
		"```",
	}, "\n"))
	write("docs/ops.md", "# Operations\n\n[back](../README.md#example)\n\n## Metrics\n\n[broken back](../README.md#usage)\n")
	write(".hidden/x.md", "[ignored](nope.md)\n")

	if r, err := Root(filepath.Join(root, "docs")); err != nil || r != root {
		t.Fatalf("Root = %q, %v; want %q", r, err, root)
	}
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"README.md", "docs/ops.md"}; !reflect.DeepEqual(files, want) {
		t.Fatalf("Files = %v, want %v", files, want)
	}
	problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`README.md:6: link "docs/gone.md": no such file`,
		`README.md:7: link "docs/ops.md#security": no heading has the anchor #security`,
		`README.md:7: link "#quickstart": no heading has the anchor #quickstart`,
		`README.md:8: link "../elsewhere.md": points outside the repository`,
		`docs/ops.md:7: link "../README.md#usage": no heading has the anchor #usage`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}
