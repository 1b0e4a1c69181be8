package web

import (
	"embed"
	"html/template"
)

//go:embed partials.html
var partials embed.FS

// Partials adds to t the blocks the admin UI and the lookup page share:
// "notices" (a page's .Banners and .Flash), and "quota-head" and
// "no-usage" of their quota tables.
func Partials(t *template.Template) *template.Template {
	return template.Must(t.ParseFS(partials, "partials.html"))
}
