package ui

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// topUsers is how many users the dashboard ranks.
const topUsers = 10

// dashboardPerUser bounds the events the dashboard reads of each user, so
// that one page view cannot read the whole database; a user past it is
// counted from the newest ones only, and the page says so.
const dashboardPerUser = 5000

// dashboardPage shows the whole service's usage of the last 30 days,
// from the events (EVENT_LOGGING), and the stats download.
type dashboardPage struct {
	*layout
	Logging bool
	Chart   *chart
	Top     []topRow
	Users   int
	Partial int // users counted from their newest dashboardPerUser events only
}

type topRow struct {
	Rank     int
	Token    string
	Short    string
	Href     string
	Nickname string
	Requests int
	Tokens   int64
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request, s session) {
	p := &dashboardPage{layout: h.layout(r, &s, "Dashboard", "dashboard"), Logging: h.cfg.EventLogging}
	byUser, ok := h.recentEvents(w, r)
	if !ok {
		return
	}
	list, ok := h.listAll(w, r)
	if !ok {
		return
	}
	p.Users = len(list)
	nick := map[string]string{}
	for _, u := range list {
		nick[u.Token] = u.Nickname
	}
	var all []users.Event
	for token, evs := range byUser {
		if len(evs) >= dashboardPerUser {
			p.Partial++
		}
		all = append(all, evs...)
		row := topRow{Token: token, Short: shortToken(token), Href: p.URL(userPath(token)), Nickname: nick[token], Requests: len(evs)}
		for _, e := range evs {
			row.Tokens += e.Tokens()
		}
		p.Top = append(p.Top, row)
	}
	slices.SortFunc(p.Top, func(a, b topRow) int {
		return cmp.Or(cmp.Compare(b.Tokens, a.Tokens), strings.Compare(a.Token, b.Token))
	})
	p.Top = p.Top[:min(len(p.Top), topUsers)]
	for i := range p.Top {
		p.Top[i].Rank = i + 1
	}
	p.Chart = buildChart("usage-chart", all, h.now())
	h.render(w, r, http.StatusOK, "dashboard", p)
}

// recentEvents reads every user's events of the charts' days; none
// without EVENT_LOGGING.
func (h *handler) recentEvents(w http.ResponseWriter, r *http.Request) (map[string][]users.Event, bool) {
	ev, ok := h.store.(users.Events)
	if !ok || !h.cfg.EventLogging {
		return nil, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), web.AllUsersTimeout)
	defer cancel()
	since := h.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(chartDays - 1))
	byUser, err := ev.EventsSince(ctx, since, dashboardPerUser)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return byUser, true
}

// statsOptions are the stats download's choices, as the original's
// "generate stats".
type statsOptions struct {
	Anonymise bool
	Sort      string // "tokens" or "prompts"
	Top       int
	Format    string // "table" (Markdown, for Rentry) or "code"
}

const maxStatsTop = 1000

func parseStatsOptions(q map[string][]string) (statsOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	anon := get("anonymise")
	o := statsOptions{Anonymise: anon == "on" || anon == "true" || anon == "1", Sort: cmp.Or(get("sort"), "tokens"), Format: cmp.Or(get("format"), "table"), Top: 10}
	var issues []users.Issue
	if raw := get("top"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxStatsTop {
			issues = append(issues, users.Issue{Path: "top", Message: fmt.Sprintf("must be a whole number from 1 to %d", maxStatsTop)})
		}
		o.Top = n
	}
	if o.Sort != "tokens" && o.Sort != "prompts" {
		issues = append(issues, users.Issue{Path: "sort", Message: "must be tokens or prompts"})
	}
	if o.Format != "table" && o.Format != "code" {
		issues = append(issues, users.Issue{Path: "format", Message: "must be table or code"})
	}
	if issues != nil {
		return o, &users.Error{Code: users.CodeInvalid, Message: "Invalid stats options: " + issues[0].Path + " " + issues[0].Message, Issues: issues}
	}
	return o, nil
}

// Stats is the users' usage as Markdown, as the original's "generate
// stats", with the choices of q: top (1-1000, default 10), sort (tokens
// or prompts), format (table, for Rentry, or code: a code block) and
// anonymise (on/true/1). Bad choices are a CodeInvalid error.
func Stats(list []*users.User, q url.Values, now time.Time) (string, error) {
	o, err := parseStatsOptions(q)
	if err != nil {
		return "", err
	}
	return renderStats(list, o, now), nil
}

// stats downloads the users' usage as Markdown: a table (Rentry renders
// it) or a fixed-width code block.
func (h *handler) stats(w http.ResponseWriter, r *http.Request, s session) {
	if _, err := parseStatsOptions(r.URL.Query()); err != nil {
		h.renderError(w, r, http.StatusBadRequest, users.AsError(err).Message)
		return
	}
	list, ok := h.listAll(w, r)
	if !ok {
		return
	}
	body, _ := Stats(list, r.URL.Query(), h.now())
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="stats.md"`)
	_, _ = w.Write([]byte(body))
}

// markdownName escapes a nickname for a table cell: it is the user's own
// choice, and the stats are published (Rentry), so it must not become a
// link, an image, markup or another cell. The backslash escapes are of
// characters both CommonMark and Python-Markdown (Rentry's) read as
// inline markup; '<' and '&' become entities. (A bare URL stays text on
// Rentry; a GitHub-flavoured renderer would link it.)
var markdownName = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "{", `\{`, "}", `\}`, "[", `\[`, "]", `\]`,
	"(", `\(`, ")", `\)`, "!", `\!`, "|", `\|`, "<", "&lt;", "&", "&amp;", "\n", " ", "\r", " ")

// renderStats is the stats text: the top users by o.Sort, their prompts,
// tokens and families, anonymised to "User N" when asked (else the
// nickname, or the token's first characters).
func renderStats(list []*users.User, o statsOptions, now time.Time) string {
	type row struct {
		name     string
		prompts  int64
		tokens   int64
		families string
	}
	rows := make([]row, 0, len(list))
	var totalPrompts, totalTokens int64
	for _, u := range list {
		rw := row{name: u.Nickname, prompts: u.PromptCount, tokens: sum(u.TokenCounts)}
		if rw.name == "" {
			rw.name = shortToken(u.Token)
		}
		var fams []string
		for _, f := range familiesOf(u.TokenCounts) {
			if n := u.TokenCounts[f]; n > 0 {
				fams = append(fams, f+" "+compact(n))
			}
		}
		rw.families = strings.Join(fams, ", ")
		totalPrompts += rw.prompts
		totalTokens += rw.tokens
		rows = append(rows, rw)
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if o.Sort == "prompts" {
			return cmp.Or(cmp.Compare(b.prompts, a.prompts), cmp.Compare(b.tokens, a.tokens))
		}
		return cmp.Or(cmp.Compare(b.tokens, a.tokens), cmp.Compare(b.prompts, a.prompts))
	})
	rows = rows[:min(len(rows), o.Top)]
	var b strings.Builder
	fmt.Fprintf(&b, "# Usage stats\n\n%d users, %s prompts, %s tokens in all; top %d by %s, as of %s.\n\n",
		len(list), compact(totalPrompts), compact(totalTokens), len(rows), o.Sort, now.UTC().Format("2006-01-02 15:04 UTC"))
	cells := make([][]string, 0, len(rows))
	for i, rw := range rows {
		name := rw.name
		if o.Anonymise {
			name = fmt.Sprintf("User %d", i+1)
		}
		cells = append(cells, []string{strconv.Itoa(i + 1), name, strconv.FormatInt(rw.prompts, 10), strconv.FormatInt(rw.tokens, 10), rw.families})
	}
	head := []string{"#", "User", "Prompts", "Tokens", "Families"}
	if o.Format == "table" {
		b.WriteString("| " + strings.Join(head, " | ") + " |\n|---|---|--:|--:|---|\n")
		for _, c := range cells {
			c[1] = markdownName.Replace(c[1]) // the one cell a user writes
			b.WriteString("| " + strings.Join(c, " | ") + " |\n")
		}
		return b.String()
	}
	width := make([]int, len(head))
	for j, hd := range head {
		width[j] = len([]rune(hd))
		for _, c := range cells {
			c[j] = strings.ReplaceAll(strings.ReplaceAll(c[j], "\n", " "), "```", "'''")
			width[j] = max(width[j], len([]rune(c[j])))
		}
	}
	line := func(c []string) {
		var l strings.Builder
		for j, v := range c {
			pad := strings.Repeat(" ", width[j]-len([]rune(v)))
			if j == 0 || j == 2 || j == 3 {
				l.WriteString(pad + v)
			} else {
				l.WriteString(v + pad)
			}
			l.WriteString("  ")
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	b.WriteString("```\n")
	line(head)
	for _, c := range cells {
		line(c)
	}
	b.WriteString("```\n")
	return b.String()
}

// compact writes a count the short way (1.2k, 3.4M).
func compact(n int64) string {
	switch {
	case n >= 1_000_000_000:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "B"
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 10_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}
