package admin_test

import (
	"testing"

	"github.com/surge-vote/surge/internal/testenv"
)

// TestMain stops the Postgres server the tests share and removes its data,
// as the other packages that use one do.
func TestMain(m *testing.M) { testenv.Main(m) }
