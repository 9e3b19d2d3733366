package report

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The chart is hand-written SVG: a few hundred lines of Go give full control
// of the look and no dependency (a plotting library would bring fonts and
// image codecs for one chart).

const (
	chartWidth  = 960
	chartHeight = 540

	plotLeft   = 76  // room for the OPS labels and the axis title
	plotTop    = 104 // below the title and subtitle
	plotBottom = chartHeight - 64

	// settledPlateAppearances is when a season-to-date OPS stops swinging
	// wildly. The OPS axis is scaled to the points from there on, so that a
	// 3.000 after one game does not flatten the rest of the season; the lines
	// are clipped to the plot and a note says so.
	settledPlateAppearances = 40

	fontFamily = `system-ui, -apple-system, &quot;Segoe UI&quot;, Helvetica, Arial, &quot;DejaVu Sans&quot;, sans-serif`
)

// seriesColors are the Okabe–Ito colors (distinguishable with the common
// forms of color blindness), strongest first; more players reuse them.
var seriesColors = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// chartSeries is one player's line: the points with a valid OPS, in order.
type chartSeries struct {
	player Player
	x      []float64 // days since the Unix epoch
	y      []float64 // OPS
	last   Point
	color  string
}

// WriteOPSChartSVG draws each player's cumulative OPS by date as a
// self-contained SVG line chart: one line per player, a legend with each
// player's latest OPS (best first), a date axis with a tick per month, an
// OPS axis with gridlines, the title and, under it, the subtitle (say there
// where the numbers come from). Points without an OPS (no at bat yet) are
// left out; the second game of a doubleheader is drawn half a day after the
// first. It fails when no player has a point to draw. The legend is sized for
// a handful of players, as a team report has.
func WriteOPSChartSVG(w io.Writer, series map[Player][]Point, title, subtitle string) error {
	lines := chartLines(series)
	if len(lines) == 0 {
		return errors.New("report: chart: no player has an OPS to draw")
	}

	// Horizontal scale: the season's span in days.
	xMin, xMax := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		xMin, xMax = min(xMin, l.x[0]), max(xMax, l.x[len(l.x)-1])
	}
	if xMax-xMin < 1 {
		xMin, xMax = xMin-1, xMax+1
	}
	lastDay := xMax
	xMax += (xMax - xMin) / 80 // room for the dots at the lines' ends

	// Vertical scale: nice ticks around the settled points.
	yLo, yHi, yStep, clipped := opsAxis(series, lines)

	// The legend's width follows the longest name, so names are never cut.
	longestName := 0
	for _, l := range lines {
		longestName = max(longestName, len([]rune(l.player.Name)))
	}
	legendWidth := max(184.0, 24+28+float64(longestName)*7.4+14+40+24)
	plotRight := chartWidth - legendWidth

	xOf := func(day float64) float64 { return plotLeft + (day-xMin)/(xMax-xMin)*(plotRight-plotLeft) }
	yOf := func(ops float64) float64 { return plotBottom - (ops-yLo)/(yHi-yLo)*(plotBottom-plotTop) }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" font-family="%s">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight, fontFamily)
	fmt.Fprintf(&b, "<title>%s</title>\n", escape(title))
	if subtitle != "" {
		fmt.Fprintf(&b, "<desc>%s</desc>\n", escape(subtitle))
	}
	fmt.Fprintf(&b, `<defs><clipPath id="ops-plot-area"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath></defs>`+"\n",
		float64(plotLeft), float64(plotTop)-2, plotRight-plotLeft, float64(plotBottom-plotTop)+4)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, chartHeight)

	// Title and subtitle.
	fmt.Fprintf(&b, `<text class="title" x="24" y="42" font-size="22" font-weight="700" fill="#111827">%s</text>`+"\n", escape(title))
	if subtitle != "" {
		fmt.Fprintf(&b, `<text class="subtitle" x="24" y="68" font-size="14" fill="#4b5563">%s</text>`+"\n", escape(subtitle))
	}

	// OPS axis: gridlines and labels.
	b.WriteString(`<g class="y-axis" font-size="12" fill="#4b5563" text-anchor="end">` + "\n")
	for i := 0; ; i++ {
		v := yLo + float64(i)*yStep
		if v > yHi+yStep/2 {
			break
		}
		y := yOf(v)
		stroke := "#e5e7eb"
		if i == 0 {
			stroke = "#9ca3af"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`+"\n", float64(plotLeft), y, plotRight, y, stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" dy="0.35em">%s</text>`+"\n", float64(plotLeft)-10, y,
			Rate{Thousandths: int(math.Round(v * 1000)), Valid: true})
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<text class="axis-title" transform="translate(22 %.1f) rotate(-90)" font-size="12" fill="#4b5563" text-anchor="middle">OPS, season to date</text>`+"\n",
		float64(plotTop+plotBottom)/2)

	// Date axis: a tick and a faint gridline per month (per week for a short
	// span).
	b.WriteString(`<g class="x-axis" font-size="12" fill="#4b5563" text-anchor="middle">` + "\n")
	for _, tick := range dateTicks(xMin, lastDay) {
		x := xOf(tick.day)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f3f4f6" stroke-width="1"/>`+"\n", x, float64(plotTop), x, float64(plotBottom))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#9ca3af" stroke-width="1"/>`+"\n", x, float64(plotBottom), x, float64(plotBottom)+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x, float64(plotBottom)+20, escape(tick.label))
	}
	b.WriteString("</g>\n")

	if clipped {
		fmt.Fprintf(&b, `<text class="note" x="%.1f" y="%d" font-size="11" fill="#6b7280" font-style="italic">The axis fits each line from its %dth plate appearance on; earlier values beyond it are cut off.</text>`+"\n",
			float64(plotLeft), chartHeight-14, settledPlateAppearances)
	}

	// The lines, worst first so the leader is drawn on top.
	fmt.Fprintf(&b, `<g class="series" clip-path="url(#ops-plot-area)" fill="none" stroke-width="2.25" stroke-linejoin="round" stroke-linecap="round">`+"\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		var d strings.Builder
		for j := range l.x {
			verb := "L"
			if j == 0 {
				verb = "M"
			}
			fmt.Fprintf(&d, "%s%.1f,%.1f", verb, xOf(l.x[j]), yOf(l.y[j]))
		}
		fmt.Fprintf(&b, `<path class="series-line" data-player="%s" stroke="%s" d="%s"><title>%s</title></path>`+"\n",
			escape(l.player.Name), l.color, d.String(), escape(l.player.Name))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="ends" stroke="#ffffff" stroke-width="1.5">` + "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		n := len(l.x) - 1
		if l.y[n] < yLo || l.y[n] > yHi { // off the axis: the line's clipped end says so
			continue
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", xOf(l.x[n]), yOf(l.y[n]), l.color)
	}
	b.WriteString("</g>\n")

	// Legend: a swatch, the name and the latest OPS; when a line stops before
	// the others, the date of its last game under the name.
	legendLeft := plotRight + 28
	legendRight := float64(chartWidth - 24)
	fmt.Fprintf(&b, `<g class="legend" font-size="13" fill="#111827">`+"\n")
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#6b7280">PLAYER</text>`+"\n", legendLeft, plotTop)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#6b7280" text-anchor="end">OPS</text>`+"\n", legendRight, plotTop)
	y := float64(plotTop) + 26
	for _, l := range lines {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3" stroke-linecap="round"/>`+"\n", legendLeft, y-4.5, legendLeft+18, y-4.5, l.color)
		fmt.Fprintf(&b, `<text class="legend-name" x="%.1f" y="%.1f">%s</text>`+"\n", legendLeft+28, y, escape(l.player.Name))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-weight="600">%s</text>`+"\n", legendRight, y, l.last.OPS)
		if l.x[len(l.x)-1] < lastDay-0.75 {
			y += 16
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#6b7280">last game %s</text>`+"\n", legendLeft+28, y, l.last.Date.Format("Jan 2"))
		}
		y += 26
	}
	b.WriteString("</g>\n</svg>\n")

	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("report: write chart: %w", err)
	}
	return nil
}

// chartLines turns each player's points into a line of the points that have
// an OPS, best latest OPS first, and gives each its color.
func chartLines(series map[Player][]Point) []chartSeries {
	var lines []chartSeries
	for player, points := range series {
		l := chartSeries{player: player}
		for _, p := range points {
			if !p.OPS.Valid {
				continue
			}
			l.x = append(l.x, chartDay(p))
			l.y = append(l.y, p.OPS.Float64())
			l.last = p
		}
		if len(l.x) > 0 {
			lines = append(lines, l)
		}
	}
	slices.SortFunc(lines, func(a, b chartSeries) int {
		return cmp.Or(
			cmp.Compare(b.last.OPS.Thousandths, a.last.OPS.Thousandths),
			strings.Compare(a.player.Name, b.player.Name),
			cmp.Compare(a.player.ID, b.player.ID),
		)
	})
	for i := range lines {
		lines[i].color = seriesColors[i%len(seriesColors)]
	}
	return lines
}

// chartDay places a game on the date axis, in days since the Unix epoch:
// the second game of a doubleheader half a day after the first.
func chartDay(p Point) float64 {
	y, m, d := p.Date.Date()
	day := float64(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	if p.GameNumber >= 2 {
		day += 0.5
	}
	return day
}

// opsAxis picks the OPS axis: from yLo to yHi by yStep, covering every point
// once its player has settledPlateAppearances (every point, if none has).
// clipped reports whether some drawn point falls outside it.
func opsAxis(series map[Player][]Point, lines []chartSeries) (yLo, yHi, yStep float64, clipped bool) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, points := range series {
		for _, p := range points {
			if p.OPS.Valid && p.PlateAppearances >= settledPlateAppearances {
				lo, hi = min(lo, p.OPS.Float64()), max(hi, p.OPS.Float64())
			}
		}
	}
	if math.IsInf(lo, 1) { // nobody has settled yet: fit everything
		for _, l := range lines {
			for _, v := range l.y {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	switch span := hi - lo; {
	case span <= 0.5:
		yStep = 0.1
	case span <= 1.2:
		yStep = 0.2
	default:
		yStep = 0.5
	}
	yLo = math.Floor(lo/yStep+1e-9) * yStep
	yHi = math.Ceil(hi/yStep-1e-9) * yStep
	if yHi-yLo < 2*yStep { // a flat line still gets a readable axis
		yLo = max(0, yLo-yStep)
		yHi = yLo + 3*yStep
	}
	for _, l := range lines {
		for _, v := range l.y {
			if v < yLo-1e-9 || v > yHi+1e-9 {
				clipped = true
			}
		}
	}
	return yLo, yHi, yStep, clipped
}

type dateTick struct {
	day   float64
	label string
}

// dateTicks returns a tick on the first of every month in [xMin, xMax] (days
// since the epoch), labelled with the month ("Apr"; "Jan 2025" for a January
// after the first tick, so a year change shows). Spans with fewer than two
// month starts get weekly ticks from the first day instead ("Mar 20").
func dateTicks(xMin, xMax float64) []dateTick {
	start := time.Unix(int64(math.Ceil(xMin))*86400, 0).UTC()
	var ticks []dateTick
	month := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC)
	if month.Before(start) {
		month = month.AddDate(0, 1, 0)
	}
	for ; float64(month.Unix()/86400) <= xMax; month = month.AddDate(0, 1, 0) {
		label := month.Format("Jan")
		if month.Month() == time.January && len(ticks) > 0 {
			label = month.Format("Jan 2006")
		}
		ticks = append(ticks, dateTick{day: float64(month.Unix() / 86400), label: label})
	}
	if len(ticks) >= 2 {
		return ticks
	}
	ticks = ticks[:0]
	for day := start; float64(day.Unix()/86400) <= xMax; day = day.AddDate(0, 0, 7) {
		ticks = append(ticks, dateTick{day: float64(day.Unix() / 86400), label: day.Format("Jan 2")})
	}
	return ticks
}

// escape makes s safe as SVG text content and as an attribute value (it
// escapes quotes too).
func escape(s string) string {
	var b strings.Builder
	// xml.EscapeText only fails when its writer does; a strings.Builder never does.
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
