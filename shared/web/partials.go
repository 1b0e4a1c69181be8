package web

import (
	"embed"
	"html/template"
)

//go:embed partials.html
var partials embed.FS

// Partials adds to t the blocks the admin UI, the lookup page and the
// captcha page share: "page-head" (a page's start, up to its title),
// "notices" (a page's .Banners and .Flash), and "quota-head" and
// "no-usage" of their quota tables.
func Partials(t *template.Template) *template.Template {
	return template.Must(t.ParseFS(partials, "partials.html"))
}
