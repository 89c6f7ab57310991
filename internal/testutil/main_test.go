package testutil

import "testing"

// TestMain fails the tests when goroutines outlive them.
func TestMain(m *testing.M) { VerifyTestMain(m) }
