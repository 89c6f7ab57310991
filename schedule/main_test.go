package schedule_test

import (
	"testing"

	"github.com/meshpool/meshpool/internal/testutil"
)

// TestMain fails the tests when goroutines outlive them.
func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
