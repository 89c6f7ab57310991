// Package e2e holds the end-to-end tests: the built meshpool binary against a
// separately started etcd server process (Debian's etcd-server, installed by
// scripts/install-test-deps.sh). They run when MESHPOOL_E2E=1, as `make test`
// sets it, and are skipped otherwise.
package e2e
