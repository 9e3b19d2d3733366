package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// svgElement is an element of the chart with its attributes and own text.
type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parseSVG decodes the chart as XML, failing the test if it is not
// well-formed, and returns its root's name and every element in order.
func parseSVG(t *testing.T, data []byte) (root string, elements []*svgElement) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var open []*svgElement
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace = %q, want the SVG namespace", tok.Name.Space)
				}
			}
			elements = append(elements, e)
			open = append(open, e)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				open[len(open)-1].text += string(tok)
			}
		}
	}
	return root, elements
}

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // test fixtures are constants
	}
	return d
}

// sampleSeries is three players over two months, one of whom starts with a
// game without an at bat (no OPS yet), and one who has no OPS at all.
func sampleSeries() map[Player][]Point {
	return map[Player][]Point{
		{ID: 1, Name: "Shohei Ohtani"}: {
			{Date: day("2024-03-20"), Games: 1, PlateAppearances: 5, OPS: Rate{Thousandths: 3000, Valid: true}},
			{Date: day("2024-04-15"), Games: 2, PlateAppearances: 50, OPS: Rate{Thousandths: 950, Valid: true}},
			{Date: day("2024-05-28"), GameNumber: 1, Games: 3, PlateAppearances: 90, OPS: Rate{Thousandths: 1010, Valid: true}},
			{Date: day("2024-05-28"), GameNumber: 2, Games: 4, PlateAppearances: 95, OPS: Rate{Thousandths: 1037, Valid: true}},
		},
		{ID: 2, Name: "Freddie Freeman"}: {
			{Date: day("2024-03-20"), Games: 1, PlateAppearances: 1, OPS: Rate{}}, // walked once: no OPS yet
			{Date: day("2024-04-20"), Games: 2, PlateAppearances: 60, OPS: Rate{Thousandths: 850, Valid: true}},
			{Date: day("2024-05-30"), Games: 3, PlateAppearances: 99, OPS: Rate{Thousandths: 885, Valid: true}},
		},
		{ID: 3, Name: "Mookie Betts"}: {
			{Date: day("2024-03-21"), Games: 1, PlateAppearances: 45, OPS: Rate{Thousandths: 700, Valid: true}},
			{Date: day("2024-05-01"), Games: 2, PlateAppearances: 80, OPS: Rate{Thousandths: 743, Valid: true}},
		},
		{ID: 4, Name: "Pinch Runner"}: {
			{Date: day("2024-04-02"), Games: 1, OPS: Rate{}},
		},
	}
}

func TestWriteOPSChartSVG(t *testing.T) {
	const (
		title    = `Cumulative OPS <by date> & "more"`
		subtitle = "Simulated batting lines on the real 2024 Dodgers schedule"
	)
	var out bytes.Buffer
	if err := WriteOPSChartSVG(&out, sampleSeries(), title, subtitle); err != nil {
		t.Fatalf("WriteOPSChartSVG: %v", err)
	}
	root, elements := parseSVG(t, out.Bytes())
	if root != "svg" {
		t.Fatalf("root element = %q, want svg", root)
	}

	texts := map[string]string{} // class -> text
	var legendNames, tickLabels []string
	var lines []*svgElement
	for _, e := range elements {
		switch {
		case e.name == "text" && e.attrs["class"] == "legend-name":
			legendNames = append(legendNames, e.text)
		case e.name == "text" && e.attrs["class"] != "":
			texts[e.attrs["class"]] = e.text
		case e.name == "path":
			lines = append(lines, e)
		}
	}
	if texts["title"] != title {
		t.Errorf("title text = %q, want %q (escaped in the SVG, intact once decoded)", texts["title"], title)
	}
	if strings.Contains(out.String(), "<by date>") {
		t.Errorf("the title's markup characters are not escaped")
	}
	if texts["subtitle"] != subtitle {
		t.Errorf("subtitle text = %q, want %q", texts["subtitle"], subtitle)
	}

	// One line per player with an OPS, the legend best latest OPS first.
	wantNames := []string{"Shohei Ohtani", "Freddie Freeman", "Mookie Betts"}
	if !slices.Equal(legendNames, wantNames) {
		t.Errorf("legend = %q, want %q", legendNames, wantNames)
	}
	if len(lines) != len(wantNames) {
		t.Fatalf("chart has %d <path> lines, want one per player with an OPS (%d)", len(lines), len(wantNames))
	}
	colors := map[string]bool{}
	for _, l := range lines {
		if l.attrs["class"] != "series-line" {
			t.Errorf("path class = %q, want series-line", l.attrs["class"])
		}
		colors[l.attrs["stroke"]] = true
	}
	if len(colors) != len(lines) {
		t.Errorf("lines share colors: %v", colors)
	}
	// Freeman's first game has no OPS: his line has his two other points.
	pointsOf := map[string]int{}
	for _, l := range lines {
		pointsOf[l.attrs["data-player"]] = strings.Count(l.attrs["d"], "M") + strings.Count(l.attrs["d"], "L")
	}
	if want := map[string]int{"Shohei Ohtani": 4, "Freddie Freeman": 2, "Mookie Betts": 2}; !maps.Equal(pointsOf, want) {
		t.Errorf("points per line = %v, want %v", pointsOf, want)
	}

	// Month ticks on the date axis.
	for _, e := range elements {
		if e.name == "text" && e.attrs["x"] != "" && slices.Contains([]string{"Apr", "May"}, e.text) {
			tickLabels = append(tickLabels, e.text)
		}
	}
	if !slices.Equal(tickLabels, []string{"Apr", "May"}) {
		t.Errorf("month tick labels = %q, want [Apr May]", tickLabels)
	}
	// Ohtani's 3.000 after one game is far above the settled lines: the chart
	// says it cuts it off.
	if !strings.Contains(texts["note"], "cut off") {
		t.Errorf("no note about the clipped early-season values; notes: %q", texts["note"])
	}
}

func TestWriteOPSChartSVGRefusesAnEmptyChart(t *testing.T) {
	for name, series := range map[string]map[Player][]Point{
		"no players": {},
		"no OPS":     {{ID: 4, Name: "Pinch Runner"}: {{Date: day("2024-04-02"), Games: 1}}},
	} {
		if err := WriteOPSChartSVG(io.Discard, series, "t", "s"); err == nil {
			t.Errorf("%s: WriteOPSChartSVG succeeded, want an error", name)
		}
	}
}

func TestWriteOPSChartSVGReportsWriteErrors(t *testing.T) {
	if err := WriteOPSChartSVG(failingWriter{}, sampleSeries(), "t", "s"); err == nil {
		t.Fatal("WriteOPSChartSVG to a failing writer succeeded, want an error")
	}
}

func TestDateTicks(t *testing.T) {
	dayNumber := func(s string) float64 { return float64(day(s).Unix() / 86400) }
	labels := func(ticks []dateTick) []string {
		var out []string
		for _, tick := range ticks {
			out = append(out, tick.label)
		}
		return out
	}
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"2024-03-20", "2024-06-30", []string{"Apr", "May", "Jun"}},
		{"2024-04-01", "2024-05-01", []string{"Apr", "May"}},
		{"2024-11-15", "2025-02-10", []string{"Dec", "Jan 2025", "Feb"}},
		// Under two month starts: weekly ticks from the first day.
		{"2024-04-10", "2024-04-30", []string{"Apr 10", "Apr 17", "Apr 24"}},
		{"2024-05-25", "2024-06-10", []string{"May 25", "Jun 1", "Jun 8"}},
	} {
		got := labels(dateTicks(dayNumber(tc.from), dayNumber(tc.to)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("dateTicks(%s, %s) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}
