// Package doccheck checks the repository's markdown: every relative link
// and image in README.md, docs/ and every other .md file must name a file
// that exists, and every #anchor a heading of the file it points into.
//
// Its test runs in `make test` (scripts/test.sh runs go test ./...). Links
// inside fenced code blocks and code spans are not links and are skipped;
// links with a scheme (http:, https:, mailto:, …) are not checked.
//
// Anchors follow GitHub's rule: the heading's text in lower case, every
// character that is not a letter, a digit, '-', '_' or a space dropped,
// spaces turned into '-', and "-1", "-2", … added to repeated headings.
package doccheck
