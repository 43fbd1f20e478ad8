package capture

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
)

// The ids the server makes for orders (for a POST without order_id, and in
// the shop's buy forms) are the key to an order's status: their random part
// must come from crypto/rand, all of it, with no sequence to extrapolate.
func TestOrderIDsComeFromCryptoRand(t *testing.T) {
	if orderIDEntropy != rand.Reader {
		t.Fatalf("order ids draw on %T, want crypto/rand.Reader", orderIDEntropy)
	}

	// The random part is exactly what the entropy source gave, for ids
	// decoded from a request and made directly: nothing else (no counter
	// carried over from the last id, as ulid.Make's monotonic source has).
	t.Cleanup(func() { orderIDEntropy = rand.Reader })
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for name, newID := range map[string]func() string{
		"newOrderID": func() string {
			id, err := newOrderID(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return id
		},
		"decodeOrder without order_id": func() string {
			o, _, err := decodeOrder(httpxtest.Request(httpx.ContentJSON, []byte(`{"item":1,"quantity":1}`)), 512)
			if err != nil {
				t.Fatal(err)
			}
			return o.ID
		},
	} {
		for range 2 { // twice in the same millisecond: the same bytes give the same entropy
			orderIDEntropy = bytes.NewReader(want)
			id, err := ulid.ParseStrict(newID())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := id.Entropy(); !bytes.Equal(got, want) {
				t.Fatalf("%s: entropy %x, want exactly the source's %x", name, got, want)
			}
		}
	}
}

// Ids made in the same millisecond do not follow one another: with
// ulid.Make, the next id was the last one plus one.
func TestOrderIDsInOneMillisecondAreNotSequential(t *testing.T) {
	now := time.Now()
	var last *big.Int
	seen := map[string]bool{}
	for i := range 1000 {
		s, err := newOrderID(now)
		if err != nil {
			t.Fatal(err)
		}
		id := ulid.MustParseStrict(s)
		e := new(big.Int).SetBytes(id.Entropy())
		if seen[s] {
			t.Fatalf("id %s made twice", s)
		}
		seen[s] = true
		if last != nil {
			if d := new(big.Int).Sub(e, last); d.IsInt64() && d.Int64() > 0 && d.Int64() < 1<<32 {
				t.Fatalf("id %d is the one before it plus %d: predictable", i, d.Int64())
			}
		}
		last = e
	}
}
