package charttest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	promql "github.com/prometheus/prometheus/promql/parser"
)

// The runbooks the alerts point at.
const operationsDoc = "../../docs/operations.md"

// instrumentKinds maps the OpenTelemetry metric API's instrument constructors to the metric
// type the Prometheus exporter names them by.
var instrumentKinds = map[string]otlptranslator.MetricType{
	"Int64Counter":                   otlptranslator.MetricTypeMonotonicCounter,
	"Float64Counter":                 otlptranslator.MetricTypeMonotonicCounter,
	"Int64ObservableCounter":         otlptranslator.MetricTypeMonotonicCounter,
	"Float64ObservableCounter":       otlptranslator.MetricTypeMonotonicCounter,
	"Int64UpDownCounter":             otlptranslator.MetricTypeNonMonotonicCounter,
	"Float64UpDownCounter":           otlptranslator.MetricTypeNonMonotonicCounter,
	"Int64ObservableUpDownCounter":   otlptranslator.MetricTypeNonMonotonicCounter,
	"Float64ObservableUpDownCounter": otlptranslator.MetricTypeNonMonotonicCounter,
	"Int64Gauge":                     otlptranslator.MetricTypeGauge,
	"Float64Gauge":                   otlptranslator.MetricTypeGauge,
	"Int64ObservableGauge":           otlptranslator.MetricTypeGauge,
	"Float64ObservableGauge":         otlptranslator.MetricTypeGauge,
	"Int64Histogram":                 otlptranslator.MetricTypeHistogram,
	"Float64Histogram":               otlptranslator.MetricTypeHistogram,
}

// instrument is one metric a service creates: its OpenTelemetry name, unit and type.
type instrument struct {
	name, unit string
	kind       otlptranslator.MetricType
	at         string // file:line, for messages
	// labels are the Prometheus labels of a library's metric (beside the target's and the
	// otel_scope_* ones), when known: a rule may match only those.
	labels []string
}

// libraryInstruments are the metrics the rules read that instrumentation libraries create,
// not the repository's code, with their Prometheus names and labels read from a scrape of
// the gateway's /metrics: otelhttp's server duration on the gateway's HTTP API
// (http_server_request_duration_seconds), and otelgrpc's on its gRPC API
// (rpc_server_call_duration_seconds, with rpc_method and rpc_response_status_code: pinned by
// the gateway's componenttest TestGRPCServerErrorsAreExported).
var libraryInstruments = []instrument{
	{name: "http.server.request.duration", unit: "s", kind: otlptranslator.MetricTypeHistogram, at: "otelhttp", labels: []string{
		"http_request_method", "http_response_status_code", "http_route", "network_protocol_name",
		"network_protocol_version", "server_address", "server_port", "url_scheme", "error_type",
	}},
	{name: "rpc.server.call.duration", unit: "s", kind: otlptranslator.MetricTypeHistogram, at: "otelgrpc", labels: []string{
		"rpc_method", "rpc_response_status_code", "rpc_system_name", "error_type",
	}},
}

// targetLabels are the labels every series carries from its scrape or its exporter.
var targetLabels = []string{
	"__name__", "namespace", "job", "pod", "service", "instance", "container", "endpoint",
	"otel_scope_name", "otel_scope_version", "otel_scope_schema_url",
}

// libraryLabels maps each Prometheus series of a library instrument to the labels it has.
func libraryLabels(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, in := range libraryInstruments {
		for name := range exportedSeries(t, []instrument{in}) {
			out[name] = append(slices.Clone(targetLabels), in.labels...)
			if strings.HasSuffix(name, "_bucket") {
				out[name] = append(out[name], "le")
			}
		}
	}
	return out
}

// sourceInstruments parses every non-test Go file of services/ and pkg/ (generated code
// aside) and returns each instrument created with a constant name, e.g.
// meter.Int64Counter("boxscore.loader.dead_letters", metric.WithUnit("{record}"), ...).
func sourceInstruments(t *testing.T) []instrument {
	t.Helper()
	var out []instrument
	fset := token.NewFileSet()
	for _, dir := range []string{"services", "pkg"} {
		err := filepath.WalkDir(filepath.Join("../..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "gen" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				kind, ok := instrumentKinds[sel.Sel.Name]
				if !ok {
					return true
				}
				name, ok := stringLit(call.Args[0])
				if !ok {
					t.Errorf("%s: %s with a name that is not a string constant: the rules cannot be checked against it", fset.Position(call.Pos()), sel.Sel.Name)
					return true
				}
				in := instrument{name: name, kind: kind, at: fset.Position(call.Pos()).String()}
				for _, arg := range call.Args[1:] {
					opt, ok := arg.(*ast.CallExpr)
					if !ok || len(opt.Args) != 1 {
						continue
					}
					if f, ok := opt.Fun.(*ast.SelectorExpr); ok && f.Sel.Name == "WithUnit" {
						if unit, ok := stringLit(opt.Args[0]); ok {
							in.unit = unit
						} else {
							t.Errorf("%s: unit of %s is not a string constant", fset.Position(opt.Pos()), name)
						}
					}
				}
				out = append(out, in)
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// exportedSeries are the Prometheus series names of the instruments, named as the services'
// exporter (go.opentelemetry.io/otel/exporters/prometheus, default strategy) names them:
// dots to underscores, the unit as a suffix (s: _seconds, ms: _milliseconds, {annotations}
// dropped), _total on monotonic counters; a histogram's _bucket, _sum and _count.
func exportedSeries(t *testing.T, instruments []instrument) map[string]string {
	t.Helper()
	namer := otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes)
	out := map[string]string{}
	for _, in := range instruments {
		name, err := namer.Build(otlptranslator.Metric{Name: in.name, Unit: in.unit, Type: in.kind})
		if err != nil {
			t.Fatalf("%s: name %q: %v", in.at, in.name, err)
		}
		if in.kind == otlptranslator.MetricTypeHistogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[name+suffix] = in.at
			}
			continue
		}
		out[name] = in.at
	}
	return out
}

// TestExportedNames pins the naming on metrics whose Prometheus names were read from a real
// scrape of /metrics, so a change in the exporter's naming shows here first.
func TestExportedNames(t *testing.T) {
	series := exportedSeries(t, append(sourceInstruments(t), libraryInstruments...))
	if len(series) < 30 {
		t.Fatalf("only %d series found in services/ and pkg/: is the layout different?", len(series))
	}
	for _, name := range []string{
		"boxscore_ingest_put_records_calls_total",             // counter without unit
		"boxscore_ingest_events_accepted_total",               // {event}: annotation dropped
		"boxscore_ingest_put_records_duration_seconds_count",  // s histogram
		"boxscore_consumer_millis_behind_latest_milliseconds", // ms gauge
		"boxscore_loader_freshness_seconds_bucket",
		"http_server_request_duration_seconds_count",
		"rpc_server_call_duration_seconds_count", // otelgrpc, semconv v1.43 (rpc.server.call.duration, s)
	} {
		if _, ok := series[name]; !ok {
			t.Errorf("%s not among the exported series", name)
		}
	}
	if _, ok := series["boxscore_consumer_millis_behind_latest"]; ok {
		t.Error("a name without its unit suffix counted as exported")
	}
}

// rulesOf renders with the PrometheusRule enabled (plus overrides) and returns it.
func rulesOf(t *testing.T, files []string, overrides map[string]any) (*monitoringv1.PrometheusRule, *Render) {
	t.Helper()
	r := render(t, loadChart(t), files, overrides)
	rules := Of[*monitoringv1.PrometheusRule](r)
	if len(rules) != 1 {
		t.Fatalf("got %d PrometheusRules, want 1", len(rules))
	}
	return rules[0], r
}

var enableRule = map[string]any{"prometheusRule": map[string]any{"enabled": true}}

func TestPrometheusRuleOnlyWhenEnabled(t *testing.T) {
	ch := loadChart(t)
	for name, files := range valueSets {
		r := render(t, ch, files, nil)
		enabled, _ := r.Values["prometheusRule"].(map[string]any)["enabled"].(bool)
		if got := len(Of[*monitoringv1.PrometheusRule](r)); enabled && got != 1 || !enabled && got != 0 {
			t.Errorf("%s: prometheusRule.enabled %v but %d PrometheusRules rendered", name, enabled, got)
		}
	}
	if got := len(Of[*monitoringv1.PrometheusRule](render(t, ch, nil, nil))); got != 0 {
		t.Errorf("the defaults render %d PrometheusRules; it must be opt-in", got)
	}
	rule, _ := rulesOf(t, nil, enableRule)
	if rule.Labels["app.kubernetes.io/instance"] != Release.Name {
		t.Errorf("PrometheusRule lacks the release's labels: %v", rule.Labels)
	}
}

// wantAlerts are the alerts issues 11 and 12 ask for, all on by default.
var wantAlerts = []string{
	"BoxscoreConsumerLagHigh", "BoxscoreShardStalled", "BoxscoreDeadLettersGrowing",
	"BoxscoreFreshnessBudgetBurnFast", "BoxscoreFreshnessBudgetBurnSlow", "BoxscorePutRecordsThrottled",
	"BoxscoreLeaseChurn", "BoxscoreGateway5xx", "BoxscoreIngestBudgetExhausted", "BoxscoreStreamGap",
	"BoxscoreGatewayGRPCErrors", "BoxscoreAPIKeysReloadFailing",
}

// TestAlerts checks every alert of every rendering that enables them: the expression is
// PromQL, reads only series the services export, within the release's selector; the alert
// has a severity, a summary, a description naming the labels that locate the problem, and a
// runbook_url whose anchor is a section of docs/operations.md.
func TestAlerts(t *testing.T) {
	series := exportedSeries(t, append(sourceInstruments(t), libraryInstruments...))
	anchors := markdownAnchors(t, operationsDoc)
	renders := map[string][]string{}
	for name, files := range valueSets {
		renders[name] = files
	}
	renders["defaults+enabled"] = nil
	for name, files := range renders {
		t.Run(name, func(t *testing.T) {
			r := render(t, loadChart(t), files, nil)
			overrides := map[string]any(nil)
			if len(Of[*monitoringv1.PrometheusRule](r)) == 0 {
				if name != "defaults+enabled" {
					return
				}
				overrides = enableRule
			}
			rule, r := rulesOf(t, files, overrides)
			values := r.Values["prometheusRule"].(map[string]any)
			base, _ := values["runbookBaseUrl"].(string)
			selector, _ := values["selector"].(string)
			var alerts []string
			for _, g := range rule.Spec.Groups {
				for _, rl := range g.Rules {
					alerts = append(alerts, rl.Alert)
					checkAlert(t, rl, series, anchors, strings.TrimSuffix(base, "/"), selector)
				}
			}
			slices.Sort(alerts)
			want := slices.Clone(wantAlerts)
			slices.Sort(want)
			if name == "defaults+enabled" && !slices.Equal(alerts, want) {
				t.Errorf("alerts %v, want %v", alerts, want)
			}
			if len(slices.Compact(slices.Clone(alerts))) != len(alerts) {
				t.Errorf("an alert name repeats: %v", alerts)
			}
		})
	}
}

var parserOpts = promql.Options{}

func checkAlert(t *testing.T, rl monitoringv1.Rule, series map[string]string, anchors map[string]bool, base, selector string) {
	t.Helper()
	if rl.Alert == "" || rl.Record != "" {
		t.Errorf("rule %q: want alerts only", rl.Alert+rl.Record)
		return
	}
	expr, err := promql.NewParser(parserOpts).ParseExpr(rl.Expr.String())
	if err != nil {
		t.Errorf("%s: expr does not parse: %v\n%s", rl.Alert, err, rl.Expr.String())
		return
	}
	var selectors int
	promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
		vs, ok := n.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		if vs.Name == "" {
			t.Errorf("%s: selector %s has no metric name to check", rl.Alert, vs)
		} else if _, ok := series[vs.Name]; !ok {
			t.Errorf("%s: reads %s, which no service exports (instruments in services/ and pkg/)", rl.Alert, vs.Name)
		}
		if known, ok := libraryLabels(t)[vs.Name]; ok {
			for _, m := range vs.LabelMatchers {
				if !slices.Contains(known, m.Name) && !strings.Contains(selector, m.Name) {
					t.Errorf("%s: matches label %s of %s, which the library does not set (it sets %v)", rl.Alert, m.Name, vs.Name, known)
				}
			}
		}
		if selector == "" {
			if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == "namespace" && m.Value == Release.Namespace }) {
				t.Errorf("%s: selector %s not scoped to the release's namespace", rl.Alert, vs)
			}
		} else {
			want, err := promql.NewParser(parserOpts).ParseMetricSelector("{" + selector + "}")
			if err != nil {
				t.Fatalf("prometheusRule.selector %q: %v", selector, err)
			}
			for _, m := range want {
				if !slices.ContainsFunc(vs.LabelMatchers, func(have *labels.Matcher) bool { return have.String() == m.String() }) {
					t.Errorf("%s: selector %s lacks %s of prometheusRule.selector", rl.Alert, vs, m)
				}
			}
		}
		return nil
	})
	if selectors == 0 {
		t.Errorf("%s: expr reads no series", rl.Alert)
	}
	if rl.For == nil {
		t.Errorf("%s: no `for`", rl.Alert)
	} else if _, err := model.ParseDuration(string(*rl.For)); err != nil {
		t.Errorf("%s: for %q: %v", rl.Alert, *rl.For, err)
	}
	switch rl.Labels["severity"] {
	case "critical", "warning", "info":
	default:
		t.Errorf("%s: severity %q", rl.Alert, rl.Labels["severity"])
	}
	for _, key := range []string{"summary", "description", "runbook_url"} {
		if strings.TrimSpace(rl.Annotations[key]) == "" {
			t.Errorf("%s: no %s annotation", rl.Alert, key)
		}
	}
	for _, key := range []string{"summary", "description"} {
		tmpl, err := template.New(key).Funcs(alertTemplateFuncs).Parse(alertTemplateHeader + rl.Annotations[key])
		if err != nil {
			t.Errorf("%s: %s is not a valid alert template: %v", rl.Alert, key, err)
			continue
		}
		if err := tmpl.Execute(io.Discard, alertTemplateData{Labels: map[string]string{}, Value: 1}); err != nil {
			t.Errorf("%s: %s does not execute as an alert template: %v", rl.Alert, key, err)
		}
	}
	// The description names where the problem is: every label the expression keeps.
	for _, label := range outputLabels(expr) {
		if !strings.Contains(rl.Annotations["description"], "$labels."+label) {
			t.Errorf("%s: description does not mention label %s, which locates the problem", rl.Alert, label)
		}
	}
	url := rl.Annotations["runbook_url"]
	page, anchor, ok := strings.Cut(url, "#")
	if !ok || page != base {
		t.Errorf("%s: runbook_url %q is not %s#<anchor>", rl.Alert, url, base)
	} else if !anchors[anchor] {
		t.Errorf("%s: runbook_url anchor #%s is no heading of docs/operations.md", rl.Alert, anchor)
	}
}

// alertTemplateHeader is what Prometheus puts before every alert template.
const alertTemplateHeader = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// alertTemplateData is the data Prometheus executes alert templates with.
type alertTemplateData struct {
	Labels         map[string]string
	ExternalLabels map[string]string
	ExternalURL    string
	Value          float64
}

// alertTemplateFuncs stubs the functions Prometheus offers alert templates, so that a
// summary or description that would not parse in Prometheus fails here.
var alertTemplateFuncs = template.FuncMap{
	"humanize": func(any) string { return "" }, "humanize1024": func(any) string { return "" },
	"humanizeDuration": func(any) string { return "" }, "humanizePercentage": func(any) string { return "" },
	"humanizeTimestamp": func(any) string { return "" }, "title": strings.ToTitle, "toUpper": strings.ToUpper,
	"toLower": strings.ToLower, "first": func(any) any { return nil }, "label": func(string, any) string { return "" },
	"value": func(any) any { return nil }, "query": func(string) (any, error) { return nil, nil },
	"reReplaceAll": func(string, string, string) string { return "" }, "match": regexp.MatchString,
	"externalURL": func() string { return "" }, "pathPrefix": func() string { return "" },
}

// outputLabels are the labels an expression's result keeps: the `by` labels of its outermost
// aggregation (the alerts aggregate with `by`, never `without`).
func outputLabels(expr promql.Expr) []string {
	switch e := expr.(type) {
	case *promql.AggregateExpr:
		if !e.Without {
			return e.Grouping
		}
	case *promql.BinaryExpr:
		return outputLabels(e.LHS)
	case *promql.ParenExpr:
		return outputLabels(e.Expr)
	}
	return nil
}

// markdownAnchors returns the anchors GitHub gives a Markdown file's headings: lower case,
// punctuation other than - and _ dropped, spaces as hyphens.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// TestFreshnessSLOIsABucket: the SLO threshold must be a bucket boundary of the loader's
// freshness histogram, or the burn-rate alert selects no bucket and never fires. The schema
// offers only boundaries; this keeps its list equal to the loader's FreshnessBuckets.
func TestFreshnessSLOIsABucket(t *testing.T) {
	buckets := freshnessBuckets(t)
	data, err := os.ReadFile(filepath.Join(ChartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			PrometheusRule struct {
				Properties struct {
					Alerts struct {
						Properties struct {
							FreshnessBurn struct {
								Properties struct {
									SLOSeconds struct {
										Enum []float64 `json:"enum"`
									} `json:"sloSeconds"`
								} `json:"properties"`
							} `json:"freshnessBurn"`
						} `json:"properties"`
					} `json:"alerts"`
				} `json:"properties"`
			} `json:"prometheusRule"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	enum := schema.Properties.PrometheusRule.Properties.Alerts.Properties.FreshnessBurn.Properties.SLOSeconds.Enum
	if !slices.Equal(enum, buckets) {
		t.Errorf("schema's sloSeconds enum %v, want the loader's FreshnessBuckets %v", enum, buckets)
	}
	rule, r := rulesOf(t, nil, enableRule)
	slo := r.Values["prometheusRule"].(map[string]any)["alerts"].(map[string]any)["freshnessBurn"].(map[string]any)["sloSeconds"]
	for _, g := range rule.Spec.Groups {
		for _, rl := range g.Rules {
			if strings.HasPrefix(rl.Alert, "BoxscoreFreshness") && !strings.Contains(rl.Expr.String(), `le=~"`+strconv.FormatFloat(toFloat(slo), 'f', -1, 64)+`(\\.0)?"`) {
				t.Errorf("%s does not select the sloSeconds bucket %v:\n%s", rl.Alert, slo, rl.Expr.String())
			}
		}
	}
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	return -1
}

// freshnessBuckets reads the loader's FreshnessBuckets from its source.
func freshnessBuckets(t *testing.T) []float64 {
	t.Helper()
	path := "../../services/loader/internal/warehouse/metrics.go"
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "FreshnessBuckets" || len(spec.Values) != 1 {
			return true
		}
		lit, ok := spec.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, elt := range lit.Elts {
			b, ok := elt.(*ast.BasicLit)
			if !ok {
				t.Fatalf("FreshnessBuckets element %T is not a literal", elt)
			}
			f, err := strconv.ParseFloat(b.Value, 64)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
		return false
	})
	if len(out) == 0 {
		t.Fatalf("no FreshnessBuckets in %s", path)
	}
	return out
}

// TestAlertValues: thresholds and windows reach the expressions, and disabling an alert
// removes it.
func TestAlertValues(t *testing.T) {
	rule, _ := rulesOf(t, nil, map[string]any{"prometheusRule": map[string]any{
		"enabled":     true,
		"alertLabels": map[string]any{"team": "data"},
		"alerts": map[string]any{
			"consumerLag":  map[string]any{"thresholdSeconds": 120, "for": "3m", "severity": "critical"},
			"shardStalled": map[string]any{"enabled": false},
			"leaseChurn":   map[string]any{"takesPerShard": 3},
		},
	}, "stream": map[string]any{"shards": 8}})
	found := map[string]monitoringv1.Rule{}
	for _, g := range rule.Spec.Groups {
		for _, rl := range g.Rules {
			found[rl.Alert] = rl
			if rl.Labels["team"] != "data" {
				t.Errorf("%s: alertLabels not applied: %v", rl.Alert, rl.Labels)
			}
		}
	}
	if _, ok := found["BoxscoreShardStalled"]; ok {
		t.Error("a disabled alert rendered")
	}
	lag := found["BoxscoreConsumerLagHigh"]
	if !strings.Contains(lag.Expr.String(), "/ 1000 > 120") || lag.For == nil || *lag.For != "3m" || lag.Labels["severity"] != "critical" {
		t.Errorf("consumerLag values not applied: %+v", lag)
	}
	if churn := found["BoxscoreLeaseChurn"]; !strings.Contains(churn.Expr.String(), "> 24") {
		t.Errorf("lease churn threshold is not takesPerShard x stream.shards (24): %s", churn.Expr.String())
	}
}

// TestDashboardMetricsExist: the Grafana dashboards read only series the services export,
// so renaming a metric breaks this test rather than a panel.
func TestDashboardMetricsExist(t *testing.T) {
	series := exportedSeries(t, append(sourceInstruments(t), libraryInstruments...))
	paths, err := filepath.Glob(filepath.Join(ChartDir, "dashboards", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && k == "expr" {
						exprs = append(exprs, s)
					} else {
						walk(x)
					}
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		walk(doc)
		if len(exprs) == 0 {
			t.Errorf("%s: no expr found", path)
		}
		for _, text := range exprs {
			// Grafana's interval variables, as Grafana substitutes them before querying.
			text = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h").Replace(text)
			expr, err := promql.NewParser(parserOpts).ParseExpr(text)
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", filepath.Base(path), text, err)
				continue
			}
			promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
				if vs, ok := n.(*promql.VectorSelector); ok {
					if _, ok := series[vs.Name]; !ok {
						t.Errorf("%s: reads %s, which no service exports", filepath.Base(path), vs.Name)
					}
				}
				return nil
			})
		}
	}
}

// TestGatewayGRPCErrorsCodes: the gRPC alert counts the codes of a failure of the gateway
// and none of a client's mistake, on PutStats only, with the codes as otelgrpc spells them;
// `codes` replaces the list.
func TestGatewayGRPCErrorsCodes(t *testing.T) {
	errorsSelector := func(t *testing.T, overrides map[string]any) []*labels.Matcher {
		t.Helper()
		rule, _ := rulesOf(t, nil, overrides)
		for _, g := range rule.Spec.Groups {
			for _, rl := range g.Rules {
				if rl.Alert != "BoxscoreGatewayGRPCErrors" {
					continue
				}
				expr, err := promql.NewParser(parserOpts).ParseExpr(rl.Expr.String())
				if err != nil {
					t.Fatal(err)
				}
				// The numerator: the selector that matches on the status code.
				var out []*labels.Matcher
				promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
					if vs, ok := n.(*promql.VectorSelector); ok && out == nil &&
						slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == "rpc_response_status_code" }) {
						out = vs.LabelMatchers
					}
					return nil
				})
				if out == nil {
					t.Fatalf("no selector on rpc_response_status_code in %s", rl.Expr.String())
				}
				return out
			}
		}
		t.Fatal("BoxscoreGatewayGRPCErrors not rendered")
		return nil
	}
	matches := func(ms []*labels.Matcher, name, value string) bool {
		for _, m := range ms {
			if m.Name == name && !m.Matches(value) {
				return false
			}
		}
		return true
	}

	ms := errorsSelector(t, enableRule)
	for code, want := range map[string]bool{
		"UNAVAILABLE": true, "INTERNAL": true, "UNKNOWN": true, "DATA_LOSS": true, "DEADLINE_EXCEEDED": true,
		"OK": false, "INVALID_ARGUMENT": false, "RESOURCE_EXHAUSTED": false, "CANCELLED": false, "UNIMPLEMENTED": false,
	} {
		if got := matches(ms, "rpc_response_status_code", code); got != want {
			t.Errorf("code %s counted as a server error: %t, want %t", code, got, want)
		}
	}
	if !matches(ms, "rpc_method", "boxscore.ingest.v1.IngestService/PutStats") || matches(ms, "rpc_method", "grpc.health.v1.Health/Check") {
		t.Errorf("the alert does not select PutStats alone: %v", ms)
	}

	ms = errorsSelector(t, map[string]any{"prometheusRule": map[string]any{"enabled": true,
		"alerts": map[string]any{"gatewayGrpcErrors": map[string]any{"codes": []any{"INTERNAL"}}}}})
	if !matches(ms, "rpc_response_status_code", "INTERNAL") || matches(ms, "rpc_response_status_code", "UNAVAILABLE") {
		t.Errorf("codes [INTERNAL] not applied: %v", ms)
	}
}
