package postgres_test

import (
	"os"
	"testing"

	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPostgres()
	os.Exit(code)
}
