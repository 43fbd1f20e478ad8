// Package ui renders the HTML pages of every service from embedded
// templates and assets. html/template escapes all data.
package ui

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
	"net/http"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"percent": func(n, total int64) float64 {
		if total == 0 {
			return 0
		}
		return float64(n) * 100 / float64(total)
	},
}).ParseFS(templateFiles, "templates/*.html"))

// Page is what every page gets: the node that served it and its own data.
type Page struct {
	Title string
	Node  string // hostname of the serving container, shown top-left
	Data  any
}

// Render writes the named page.
func Render(w io.Writer, name string, p Page) error {
	return pages.ExecuteTemplate(w, name, p)
}

// Static serves the embedded assets (mount under /static/). Directories
// do not exist to it, so nothing lists them.
func Static() http.FileSystem {
	sub, _ := fs.Sub(staticFiles, "static")
	return filesOnly{http.FS(sub)}
}

type filesOnly struct{ http.FileSystem }

func (f filesOnly) Open(name string) (http.File, error) {
	file, err := f.FileSystem.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}
