package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"regexp"
	"time"
)

// Redacted replaces a secret's value in printed configurations.
const Redacted = "REDACTED"

// PrintConfig writes the effective configuration as a JSON object keyed by flag name (what
// an operator types), embedded groups flattened as kong flattens them. Secrets are
// redacted: a field tagged `secret:"true"` entirely, and the password of any value that is a
// URL or a key=value connection string.
func PrintConfig(w io.Writer, cfg any) error {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("print config: %T is not a struct", cfg)
	}
	out := map[string]any{}
	flatten(v, out)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

func flatten(v reflect.Value, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		field, value := t.Field(i), v.Field(i)
		if !field.IsExported() || field.Tag.Get("kong") == "-" || field.Name == "PrintConfig" {
			continue
		}
		if _, embedded := field.Tag.Lookup("embed"); embedded || field.Anonymous {
			if value.Kind() == reflect.Struct {
				flatten(value, out)
			}
			continue
		}
		name := field.Tag.Get("name")
		if name == "" {
			continue // not a flag
		}
		if field.Tag.Get("secret") == "true" {
			if !value.IsZero() {
				out[name] = Redacted
			} else {
				out[name] = ""
			}
			continue
		}
		switch x := value.Interface().(type) {
		case string:
			out[name] = redactString(x)
		case time.Duration:
			out[name] = x.String()
		default:
			out[name] = x
		}
	}
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// redactString hides the password of a URL ("postgres://user:secret@host/db") or of a
// key=value connection string ("host=db password=secret").
func redactString(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
			return u.String()
		}
	}
	return dsnPassword.ReplaceAllString(s, "${1}"+Redacted)
}
