package surge

import (
	"encoding/json"
	"testing"
)

func TestParsePrice(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Cents
		ok   bool
	}{
		{"0", 0, true}, {"12.5", 1250, true}, {"12.50", 1250, true}, {"0.01", 1, true}, {"1000000", 100000000, true},
		{"1000000.00", 100000000, true}, {"1000000.01", 0, false}, {"1.234", 0, false}, {"-1", 0, false},
		{"01", 0, false}, {"1e3", 0, false}, {"", 0, false}, {".5", 0, false}, {"5.", 0, false}, {" 5", 0, false},
	} {
		got, err := ParsePrice(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePrice(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestItemJSONRoundTrip(t *testing.T) {
	in := Item{ID: 7, Name: "Mug", Quantity: 3, Price: 1205}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"id":7,"name":"Mug","quantity":3,"price":"12.05"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var out Item
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("unmarshal: %+v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"price":12.05}`), &out); err == nil {
		t.Fatal("a float price was accepted")
	}
}
