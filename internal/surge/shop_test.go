package surge

import (
	"encoding/json"
	"maps"
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

// DecideOrder is all or nothing: an order is confirmed only if every line's
// stock suffices, and then takes all of it; otherwise nothing is taken.
func TestDecideOrder(t *testing.T) {
	stock := func() map[int64]int64 { return map[int64]int64{1: 5, 2: 1, 3: 0} }
	for _, tt := range []struct {
		name      string
		lines     []OrderLine
		status    string
		reason    string
		short     []int64
		stockLeft map[int64]int64
	}{
		{"one line, enough", []OrderLine{{1, 5}}, OrderConfirmed, "", nil, map[int64]int64{1: 0, 2: 1, 3: 0}},
		{"every line enough", []OrderLine{{1, 2}, {2, 1}}, OrderConfirmed, "", nil, map[int64]int64{1: 3, 2: 0, 3: 0}},
		{"one line short", []OrderLine{{1, 2}, {2, 2}}, OrderRejected, ReasonOutOfStock, []int64{2}, stock()},
		{"sold out line", []OrderLine{{3, 1}, {1, 1}}, OrderRejected, ReasonOutOfStock, []int64{3}, stock()},
		{"every line short", []OrderLine{{1, 6}, {2, 2}, {3, 1}}, OrderRejected, ReasonOutOfStock, []int64{1, 2, 3}, stock()},
		{"unknown item", []OrderLine{{1, 1}, {9, 1}}, OrderRejected, ReasonUnknownItem, []int64{9}, stock()},
		{"unknown outweighs short", []OrderLine{{2, 5}, {9, 1}}, OrderRejected, ReasonUnknownItem, []int64{9}, stock()},
		{"exactly the stock of every line", []OrderLine{{1, 5}, {2, 1}}, OrderConfirmed, "", nil, map[int64]int64{1: 0, 2: 0, 3: 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := stock()
			d := DecideOrder(tt.lines, s)
			if d.Status != tt.status || d.Reason != tt.reason || !slices.Equal(d.Short, tt.short) {
				t.Fatalf("DecideOrder = %+v; want %s %s %v", d, tt.status, tt.reason, tt.short)
			}
			d.TakeStock(tt.lines, s)
			if !maps.Equal(s, tt.stockLeft) {
				t.Fatalf("stock after = %v; want %v", s, tt.stockLeft)
			}
		})
	}
}

func TestValidateLines(t *testing.T) {
	many := func(n int) []OrderLine {
		l := make([]OrderLine, n)
		for i := range l {
			l[i] = OrderLine{Item: int64(i + 1), Quantity: 1}
		}
		return l
	}
	for _, tt := range []struct {
		name  string
		lines []OrderLine
		want  string // "" for valid, else part of the message
	}{
		{"one line", many(1), ""},
		{"twenty lines", many(MaxOrderLines), ""},
		{"no line", nil, "from 1 to 20 lines"},
		{"21 lines", many(MaxOrderLines + 1), "from 1 to 20 lines, not 21"},
		{"duplicate item", []OrderLine{{1, 1}, {2, 1}, {1, 2}}, "line 3: item 1 is already in the order"},
		{"quantity 0", []OrderLine{{1, 1}, {2, 0}}, "line 2: quantity"},
		{"quantity 101", []OrderLine{{1, MaxOrderQuantity + 1}}, "line 1: quantity"},
		{"negative quantity", []OrderLine{{1, -1}}, "line 1: quantity"},
		{"item 0", []OrderLine{{0, 1}}, "line 1: item"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLines(tt.lines)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || ErrorCode(err) != EINVALID):
				t.Fatalf("error %v; want EINVALID with %q", err, tt.want)
			}
		})
	}
}

func TestLinesPayload(t *testing.T) {
	a := LinesPayload([]OrderLine{{7, 1}, {1, 2}})
	if a != "1:2,7:1" || LinesPayload([]OrderLine{{1, 2}, {7, 1}}) != a || LinesPayload([]OrderLine{{7, 2}}) != "7:2" {
		t.Fatalf("payload %q", a)
	}
	back, err := ParseLinesPayload(a)
	if err != nil || LinesPayload(back) != a {
		t.Fatalf("parsed back %v, %v", back, err)
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
