package monitoring

import (
	"testing"

	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
