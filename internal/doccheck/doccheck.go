package doccheck

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Link is a relative link or image target found in a markdown file.
type Link struct {
	Line   int    // 1-based line of the link's target
	Target string // as written, e.g. "docs/security.md#limits" or "#guarantees"
}

// Problem is a link that does not resolve.
type Problem struct {
	File   string // relative to the repository root, slash-separated
	Line   int
	Target string
	Why    string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: link %q: %s", p.File, p.Line, p.Target, p.Why)
}

var (
	fenceRE   = regexp.MustCompile("^\\s*(`{3,}|~{3,})")
	atxRE     = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$`)
	closeRE   = regexp.MustCompile(`[ \t]+#+$`)
	setextRE  = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	refDefRE  = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?`)
	inlineRE  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlIDRE  = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	schemeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	emphasRE  = regexp.MustCompile(`\*+`)
	tagRE     = regexp.MustCompile(`</?[A-Za-z][^>]*>`)
	listRE    = regexp.MustCompile(`^\s*([-*+]|\d+[.)])\s`)
	blankLine = func(s string) bool { return strings.TrimSpace(s) == "" }
)

// block is a run of non-blank lines outside fenced code, starting at line
// first (1-based).
type block struct {
	first int
	lines []string
}

// blocks splits src into paragraphs-like runs of text, leaving out fenced
// code blocks (``` or ~~~, closed by a fence of the same character at least
// as long, or the end of the file).
func blocks(src string) []block {
	var out []block
	var cur *block
	var fence string
	for i, line := range strings.Split(src, "\n") {
		if fence != "" {
			if m := fenceRE.FindStringSubmatch(line); m != nil && m[1][0] == fence[0] && len(m[1]) >= len(fence) &&
				strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), m[1][:1])) == "" {
				fence = ""
			}
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			fence = m[1]
			cur = nil
			continue
		}
		if blankLine(line) {
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, block{first: i + 1})
			cur = &out[len(out)-1]
		}
		cur.lines = append(cur.lines, line)
	}
	return out
}

// blankCodeSpans replaces every code span (a run of N backticks up to the
// next run of exactly N) with spaces, keeping newlines, so that offsets and
// line numbers stay the same. An unclosed run is left as it is.
func blankCodeSpans(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(b) && b[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(b) && b[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			i += n
			continue
		}
		for k := i; k < end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		i = end
	}
	return string(b)
}

// Links returns every relative link and image target in markdown source
// src: inline links `[text](target)`, images `![alt](target)` and reference
// definitions `[label]: target`. Targets with a scheme (http:, https:,
// mailto:, …) or starting with "//" are left out, as are links in fenced
// code blocks and code spans.
func Links(src string) []Link {
	var out []Link
	for _, bl := range blocks(src) {
		text := blankCodeSpans(strings.Join(bl.lines, "\n"))
		for i, line := range strings.Split(text, "\n") {
			if m := refDefRE.FindStringSubmatch(line); m != nil {
				out = appendRelative(out, bl.first+i, m[1])
			}
		}
		for i := 0; i+1 < len(text); i++ {
			if text[i] != ']' || text[i+1] != '(' || !opened(text[:i]) {
				continue
			}
			target, ok := destination(text[i+2:])
			if !ok {
				continue
			}
			line := bl.first + strings.Count(text[:i+2], "\n")
			out = appendRelative(out, line, target)
		}
	}
	return out
}

// opened reports whether s has a '[' that no ']' closed, so that a "]("
// after it ends a link's text.
func opened(s string) bool {
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		if i > 0 && s[i-1] == '\\' {
			continue
		}
		switch s[i] {
		case ']':
			depth++
		case '[':
			if depth == 0 {
				return true
			}
			depth--
		}
	}
	return false
}

// destination reads a link destination from s, which follows "](": either
// <…> or a run without spaces whose parentheses balance, then an optional
// title and ')'.
func destination(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t\n")
	if strings.HasPrefix(s, "<") {
		end := strings.IndexAny(s, ">\n")
		if end < 0 || s[end] != '>' {
			return "", false
		}
		return s[1:end], true
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return s[:i], i > 0
			}
			depth--
		case c == ' ' || c == '\t' || c == '\n':
			return s[:i], i > 0
		}
	}
	return "", false
}

func appendRelative(out []Link, line int, target string) []Link {
	if target == "" || schemeRE.MatchString(target) || strings.HasPrefix(target, "//") {
		return out
	}
	return append(out, Link{Line: line, Target: target})
}

// Slug is GitHub's anchor for a heading's text: lower case, every
// character but letters, digits, '-', '_' and spaces dropped, spaces
// turned into '-'. Markdown in the heading is reduced to its text first.
func Slug(heading string) string {
	h := inlineRE.ReplaceAllString(heading, "$1")
	h = tagRE.ReplaceAllString(h, "")
	h = emphasRE.ReplaceAllString(h, "")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Anchors returns every anchor a link into src may name: its headings'
// slugs (repeated ones with "-1", "-2", …, as GitHub numbers them) and
// the names of <a name="…"> and <a id="…"> tags. Headings in fenced code
// blocks are not headings.
func Anchors(src string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	add := func(text string) {
		s := Slug(text)
		n := seen[s]
		seen[s] = n + 1
		if n > 0 {
			s += "-" + strconv.Itoa(n)
		}
		out[s] = true
	}
	for _, bl := range blocks(src) {
		for i, line := range bl.lines {
			for _, m := range htmlIDRE.FindAllStringSubmatch(line, -1) {
				out[m[1]] = true
			}
			if m := atxRE.FindStringSubmatch(line); m != nil {
				add(closeRE.ReplaceAllString(m[2], ""))
				continue
			}
			// A setext heading: a paragraph's line underlined by = or -.
			if i > 0 && setextRE.MatchString(line) && !atxRE.MatchString(bl.lines[i-1]) && !listRE.MatchString(bl.lines[i-1]) {
				add(bl.lines[i-1])
			}
		}
	}
	return out
}

// Root returns the nearest directory at or above dir that holds go.mod.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("doccheck: no go.mod above the working directory")
		}
		dir = parent
	}
}

// skipDir names directories that hold no documentation of the repository:
// hidden ones (.git, .ci), build and test output, test data and vendored code.
func skipDir(name string) bool {
	switch name {
	case "testdata", "vendor", "node_modules", "artifacts", "bin":
		return true
	}
	return strings.HasPrefix(name, ".") && name != "."
}

// Files returns the .md files under root, relative and slash-separated,
// sorted.
func Files(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.EqualFold(filepath.Ext(path), ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Check checks every relative link in files (relative to root) and returns
// the ones that do not resolve: a target file that does not exist or lies
// outside root, or an anchor that matches no heading of the .md file it
// points into. Anchors into other kinds of file are not checked.
func Check(root string, files []string) ([]Problem, error) {
	anchors := map[string]map[string]bool{} // by absolute path
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		a := Anchors(string(src))
		anchors[path] = a
		return a, nil
	}
	var problems []Problem
	for _, f := range files {
		abs := filepath.Join(root, filepath.FromSlash(f))
		src, err := os.ReadFile(abs)
		if err != nil {
			return nil, err
		}
		for _, l := range Links(string(src)) {
			bad := func(why string) {
				problems = append(problems, Problem{File: f, Line: l.Line, Target: l.Target, Why: why})
			}
			pathPart, frag, _ := strings.Cut(l.Target, "#")
			if i := strings.IndexByte(pathPart, '?'); i >= 0 {
				pathPart = pathPart[:i]
			}
			p, err := url.PathUnescape(pathPart)
			if err != nil {
				bad("cannot decode the path: " + err.Error())
				continue
			}
			target := abs
			if p != "" {
				if strings.HasPrefix(p, "/") {
					target = filepath.Join(root, filepath.FromSlash(p))
				} else {
					target = filepath.Join(filepath.Dir(abs), filepath.FromSlash(p))
				}
				if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					bad("points outside the repository")
					continue
				}
				st, err := os.Stat(target)
				if err != nil {
					bad("no such file")
					continue
				}
				if st.IsDir() {
					if frag != "" {
						bad("an anchor into a directory")
					}
					continue
				}
			}
			if frag == "" || !strings.EqualFold(filepath.Ext(target), ".md") {
				continue
			}
			if f, err := url.PathUnescape(frag); err == nil {
				frag = f
			}
			a, err := anchorsOf(target)
			if err != nil {
				return nil, err
			}
			if !a[frag] {
				bad(fmt.Sprintf("no heading has the anchor #%s", frag))
			}
		}
	}
	return problems, nil
}
