package ui

import (
	"slices"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// chartDays is how far back the usage charts look.
const chartDays = 30

// chart is a stacked bar chart of tokens per family per day, drawn on
// the server as SVG: readable without JavaScript, no chart library.
// Each bar is one family's tokens on one day, its height in proportion
// to the tallest day's total.
type chart struct {
	ID            string
	Width, Height float64
	PlotTop       float64
	PlotBottom    float64
	Bars          []chartBar
	Ticks         []chartTick
	Legend        []chartLegend
	Max           int64 // the tallest day's total
	Total         int64
	Days          []chartDay // the same data as a table, for screen readers and no-SVG readers
	Families      []string
}

type chartBar struct {
	X, Y, W, H float64
	Fill       string
	Family     string
	Day        string
	Tokens     int64
}

type chartTick struct {
	X     float64
	Label string
}

type chartLegend struct {
	Family string
	Fill   string
	Tokens int64
}

type chartDay struct {
	Day      string
	ByFamily []int64 // in Families' order
	Total    int64
}

// palette colours families in the order they first appear in the legend.
var palette = []string{"#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c"}

const (
	chartW      = 720.0
	chartH      = 220.0
	chartLeft   = 8.0
	chartRight  = 24.0 // room for the last day's label
	chartTop    = 10.0
	chartBottom = 190.0
)

// buildChart sums events into days ending with today (UTC) and draws them.
func buildChart(id string, events []users.Event, now time.Time) *chart {
	end := now.UTC().Truncate(24 * time.Hour)
	start := end.AddDate(0, 0, -(chartDays - 1))
	perDay := make([]map[string]int64, chartDays)
	totals := map[string]int64{}
	for _, e := range events {
		at := time.UnixMilli(e.At).UTC()
		i := int(at.Sub(start) / (24 * time.Hour))
		if at.Before(start) || i >= chartDays {
			continue
		}
		if perDay[i] == nil {
			perDay[i] = map[string]int64{}
		}
		perDay[i][e.Family] += e.Tokens()
		totals[e.Family] += e.Tokens()
	}
	c := &chart{ID: id, Width: chartW, Height: chartH, PlotTop: chartTop, PlotBottom: chartBottom}
	c.Families = familiesOf(totals)
	fill := map[string]string{}
	for i, f := range c.Families {
		fill[f] = palette[i%len(palette)]
		c.Legend = append(c.Legend, chartLegend{Family: f, Fill: fill[f], Tokens: totals[f]})
		c.Total += totals[f]
	}
	for _, m := range perDay {
		var t int64
		for _, n := range m {
			t += n
		}
		c.Max = max(c.Max, t)
	}
	slot := (chartW - chartLeft - chartRight) / chartDays
	plot := chartBottom - chartTop
	for i, m := range perDay {
		day := start.AddDate(0, 0, i)
		label := day.Format("2006-01-02")
		d := chartDay{Day: label}
		x := chartLeft + float64(i)*slot
		if i%5 == 0 || i == chartDays-1 {
			c.Ticks = append(c.Ticks, chartTick{X: x + slot/2, Label: day.Format("Jan 2")})
		}
		y := chartBottom
		for _, f := range c.Families {
			n := m[f]
			d.ByFamily = append(d.ByFamily, n)
			d.Total += n
			if n == 0 || c.Max == 0 {
				continue
			}
			h := plot * float64(n) / float64(c.Max)
			y -= h
			c.Bars = append(c.Bars, chartBar{X: x + 1, Y: y, W: slot - 2, H: h, Fill: fill[f], Family: f, Day: label, Tokens: n})
		}
		if d.Total > 0 {
			c.Days = append(c.Days, d)
		}
	}
	slices.Reverse(c.Days) // newest first in the table
	return c
}
