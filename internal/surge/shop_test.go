package surge

import (
	"encoding/json"
	"slices"
	"strings"
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
	in := Item{ID: 7, Name: "Mug", Quantity: 3, Price: 1205, Topic: "kitchen", Description: "Holds tea."}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"id":7,"name":"Mug","quantity":3,"price":"12.05","topic":"kitchen","description":"Holds tea."}` {
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

func TestParseItemDetails(t *testing.T) {
	str := func(s string) *string { return &s }
	long := strings.Repeat("é", MaxDescription)
	for _, tt := range []struct {
		name                string
		topic, description  *string
		wantTopic, wantDesc *string
		bad                 []string
	}{
		{"kept", nil, nil, nil, nil, nil},
		{"cleaned", str(" Shoes "), str(" Fast.\nRed. "), str("shoes"), str("Fast.\nRed."), nil},
		{"cleared", str(""), str(""), str(""), str(""), nil},
		{"longest", str(strings.Repeat("t", MaxTopicLength)), &long, str(strings.Repeat("t", MaxTopicLength)), &long, nil},
		{"topic too long", str(strings.Repeat("t", MaxTopicLength+1)), nil, nil, nil, []string{"topic"}},
		{"topic not a slug", str("red shoes"), nil, nil, nil, []string{"topic"}},
		{"description too long", nil, str(long + "x"), nil, nil, []string{"description"}},
		{"description with a control", nil, str("bell\a"), nil, nil, []string{"description"}},
		{"description not UTF-8", nil, str("\xff"), nil, nil, []string{"description"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var in ItemInput
			fields := map[string]string{}
			ParseItemDetails(&in, tt.topic, tt.description, fields)
			var bad []string
			for f := range fields {
				bad = append(bad, f)
			}
			slices.Sort(bad)
			if !slices.Equal(bad, tt.bad) {
				t.Fatalf("bad fields %v, want %v", fields, tt.bad)
			}
			eq := func(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
			if tt.bad == nil && (!eq(in.Topic, tt.wantTopic) || !eq(in.Description, tt.wantDesc)) {
				t.Fatalf("got topic %v description %v", in.Topic, in.Description)
			}
		})
	}
}
