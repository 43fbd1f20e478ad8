package ui

import (
	"io/fs"
	"regexp"
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

// The pages work under the services' Content-Security-Policy (httpx): no
// inline scripts, event handlers, style blocks or style attributes; those
// belong in the embedded static files.
func TestTemplatesNeedNothingInline(t *testing.T) {
	inline := regexp.MustCompile(`(?i)\son[a-z]+\s*=|<style|\sstyle\s*=|javascript:`)
	script := regexp.MustCompile(`(?i)<script[^>]*>`)
	entries, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, name := range entries {
		b, _ := fs.ReadFile(templateFiles, name)
		if m := inline.Find(b); m != nil {
			t.Errorf("%s has inline code or style the CSP refuses: %q", name, m)
		}
		for _, tag := range script.FindAll(b, -1) {
			if !strings.Contains(string(tag), "src=") {
				t.Errorf("%s has an inline script: %q", name, tag)
			}
		}
	}
}

// The asset folder is served file by file; directories are not found, so
// nothing lists them.
func TestStaticServesFilesOnly(t *testing.T) {
	fsys := Static()
	for _, dir := range []string{"/", "."} {
		if f, err := fsys.Open(dir); err == nil {
			f.Close()
			t.Errorf("directory %q opens", dir)
		}
	}
	f, err := fsys.Open("/results.js")
	if err != nil {
		t.Fatalf("results.js: %v", err)
	}
	f.Close()
}
