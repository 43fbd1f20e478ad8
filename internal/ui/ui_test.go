package ui

import (
	"strings"
	"testing"
)

func TestRenderEscapesAndShowsNode(t *testing.T) {
	var b strings.Builder
	err := Render(&b, "vote.html", Page{Title: "t", Node: "<node-1>", Data: map[string]any{
		"Poll":  map[string]any{"ID": "p", "Title": "<script>alert(1)</script>", "Options": []string{"a", "b"}},
		"Voted": "", "VotedNode": "",
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "<script>alert(1)") || !strings.Contains(out, "&lt;script&gt;") {
		t.Fatalf("title not escaped: %s", out)
	}
	if !strings.Contains(out, `id="node"`) || !strings.Contains(out, "&lt;node-1&gt;") {
		t.Fatalf("node missing: %s", out)
	}
}
