package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Strict YAML decoding of the config file: unknown fields with their line and a suggestion,
// duplicate keys, wrong scalar types, second documents.

// decodeConfig decodes YAML strictly into a Config. Errors carry no file name and are one line.
func decodeConfig(src []byte) (Config, error) {
	var cfg Config
	if !utf8.Valid(src) {
		return cfg, errors.New("invalid YAML: not UTF-8")
	}
	if line := secondDocumentLine(src); line > 0 {
		return cfg, fmt.Errorf("a second YAML document starts at line %d; put everything in one", line)
	}
	// Pass 1: YAML syntax and duplicate keys (yaml.v2 strict mode), then a check of every key
	// against the struct's exact json names. encoding/json matches names case-insensitively and
	// its unknown-field error has neither the path nor a line, so both are done here.
	j, err := yaml.YAMLToJSONStrict(src)
	if err != nil {
		return cfg, yamlError(err)
	}
	if problems := checkFields(reflect.TypeFor[Config](), json.RawMessage(j), nil); len(problems) > 0 {
		return cfg, problemsError(src, problems)
	}
	// Pass 2: the decode proper; what is left to catch here is a wrong type for a non-string field.
	if err := yaml.UnmarshalStrict(src, &cfg); err != nil {
		return Config{}, decodeError(src, err)
	}
	return cfg, nil
}

// fieldProblem is one problem with one key, located by its path of json names.
type fieldProblem struct {
	path    []string
	what    string // e.g. `unknown field "templates.rnu"` or `field "resyncPeriod"`
	detail  string // "" or what is wrong with the value
	suggest string // "" or the did-you-mean candidate, as a full dotted path
}

// checkFields walks the JSON form of a config against the json names of typ's fields.
func checkFields(typ reflect.Type, raw json.RawMessage, prefix []string) []fieldProblem {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		what := "the top level"
		if len(prefix) > 0 {
			what = fmt.Sprintf("field %q", strings.Join(prefix, "."))
		}
		return []fieldProblem{{path: prefix, what: what, detail: "expected a mapping of fields"}}
	}
	fields := jsonFields(typ)
	names := sortedKeys(fields)
	keys := sortedKeys(obj)

	var problems []fieldProblem
	for _, k := range keys {
		path := append(append([]string(nil), prefix...), k)
		f, ok := fields[k]
		if !ok {
			p := fieldProblem{path: path, what: fmt.Sprintf("unknown field %q", strings.Join(path, "."))}
			if s := suggest(k, names); s != "" {
				p.suggest = strings.Join(append(append([]string(nil), prefix...), s), ".")
			}
			problems = append(problems, p)
			continue
		}
		switch {
		case f.Type.Kind() == reflect.String:
			if d := scalarNotString(obj[k]); d != "" {
				problems = append(problems, fieldProblem{path: path,
					what: fmt.Sprintf("field %q", strings.Join(path, ".")), detail: d})
			}
		case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.String:
			var m map[string]json.RawMessage
			if json.Unmarshal(obj[k], &m) != nil {
				continue // not a mapping: the decode proper reports it with the expected type
			}
			for _, mk := range sortedKeys(m) {
				if d := scalarNotString(m[mk]); d != "" {
					problems = append(problems, fieldProblem{path: append(path[:len(path):len(path)], mk),
						what: fmt.Sprintf("field %q", strings.Join(path, ".")+"."+mk), detail: d})
				}
			}
		case f.Type == reflect.TypeFor[Duration]():
			var d Duration
			if err := json.Unmarshal(obj[k], &d); err != nil {
				problems = append(problems, fieldProblem{path: path,
					what: fmt.Sprintf("field %q", strings.Join(path, ".")), detail: err.Error()})
			}
		case f.Type.Kind() == reflect.Struct:
			problems = append(problems, checkFields(f.Type, obj[k], path)...)
		}
	}
	return problems
}

// scalarNotString explains why a YAML number or boolean is refused for a string field ("" for a
// string, null or a non-scalar, which the decode proper handles). sigs.k8s.io/yaml would convert
// it, but YAML 1.1 conversion is lossy (0755 -> "493", yes -> "true", 1.0 -> "1").
func scalarNotString(raw json.RawMessage) string {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" || t[0] == '"' || t[0] == '{' || t[0] == '[' {
		return ""
	}
	kind := "a number"
	if t == "true" || t == "false" {
		kind = "a boolean"
	}
	return fmt.Sprintf("expected a string, got %s; quote the value so YAML does not convert it", kind)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonFields maps each exported field's json name to the field.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// suggest returns the known name closest to key when it is within edit distance 2 (ignoring
// case, which alone always qualifies), else "". Ties go to the alphabetically first name.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	lk := strings.ToLower(key)
	for _, n := range names {
		if d := editDistance(lk, strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// problemsError renders field problems as one line, in source order.
func problemsError(src []byte, problems []fieldProblem) error {
	type located struct {
		line int
		text string
	}
	out := make([]located, 0, len(problems))
	for _, p := range problems {
		line := 0
		if len(p.path) > 0 {
			line = keyLine(src, p.path)
		}
		text := p.what
		if line > 0 {
			text += fmt.Sprintf(" at line %d", line)
		}
		if p.detail != "" {
			text += ": " + p.detail
		}
		if p.suggest != "" {
			text += fmt.Sprintf(" (did you mean %q?)", p.suggest)
		}
		out = append(out, located{line, text})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].line < out[j].line })
	texts := make([]string, len(out))
	for i, o := range out {
		texts[i] = o.text
	}
	return errors.New(strings.Join(texts, "; "))
}

var (
	yamlLineRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlDupRE   = regexp.MustCompile(`^key (".*") already set in map$`)
	yamlErrPfx  = regexp.MustCompile(`^yaml: (unmarshal errors:)?`)
	typeFieldRE = regexp.MustCompile(`^json: cannot unmarshal (\S+) into Go struct field \S+ of type (\S+)$`)
)

// yamlError turns a (possibly multi-line) yaml.v2 error into one line.
func yamlError(err error) error {
	msg := yamlErrPfx.ReplaceAllString(err.Error(), "")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if m := yamlLineRE.FindStringSubmatch(l); m != nil {
			if d := yamlDupRE.FindStringSubmatch(m[2]); d != nil {
				parts = append(parts, fmt.Sprintf("duplicate field %s at line %s", d[1], m[1]))
				continue
			}
			parts = append(parts, fmt.Sprintf("invalid YAML at line %s: %s", m[1], m[2]))
			continue
		}
		parts = append(parts, "invalid YAML: "+l)
	}
	if len(parts) == 0 {
		return errors.New("invalid YAML")
	}
	return errors.New(strings.Join(parts, "; "))
}

// decodeError turns an error from the strict decode into one line naming the field.
func decodeError(src []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		path := strings.Split(te.Field, ".")
		at := ""
		if line := keyLine(src, path); line > 0 {
			at = fmt.Sprintf(" at line %d", line)
		}
		want := goKind(te.Type)
		return fmt.Errorf("field %q%s: expected %s, got %s", te.Field, at, want, yamlKind(te.Value))
	}
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if m := typeFieldRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("expected %s, got %s", m[2], yamlKind(m[1]))
	}
	if msg == "" {
		msg = "cannot decode"
	}
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
}

// goKind names the expected type the way a YAML author thinks of it.
func goKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}

// yamlKind names a JSON value kind the way a YAML author thinks of it.
func yamlKind(v string) string {
	switch v {
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	case "number", "bool", "string":
		return "a " + v
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return v
}

// keyLine returns the 1-based line of the block-style key at path in src, or 0 when it cannot
// be found (flow style, for example). It scans the text: at each level it only looks at lines
// indented exactly like the first key below the parent, and stops when the parent's block ends,
// so lines inside block scalars (templates) never match.
func keyLine(src []byte, path []string) int {
	lines := strings.Split(strings.TrimPrefix(string(src), "\ufeff"), "\n")
	start, parentIndent, found := 0, -1, -1
	for depth, key := range path {
		childIndent := -1
		found = -1
		for i := start; i < len(lines); i++ {
			content := strings.TrimLeft(strings.TrimRight(lines[i], "\r"), " ")
			indent := len(strings.TrimRight(lines[i], "\r")) - len(content)
			if content == "" || content[0] == '#' {
				continue
			}
			if depth == 0 && indent == 0 && (content == "---" || strings.HasPrefix(content, "--- ") || content[0] == '%') {
				continue
			}
			if indent <= parentIndent {
				break // the parent's block ended
			}
			if childIndent < 0 {
				childIndent = indent
			}
			if indent == childIndent && lineKey(content) == key {
				found = i
				break
			}
		}
		if found < 0 {
			return 0
		}
		start, parentIndent = found+1, childIndent
	}
	return found + 1
}

// lineKey returns the mapping key a YAML line starts with ("" when it does not look like one).
func lineKey(content string) string {
	switch content[0] {
	case '"':
		end := 1
		for end < len(content) && content[end] != '"' {
			if content[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(content) {
			return ""
		}
		k, err := strconv.Unquote(content[:end+1])
		if err != nil || !strings.HasPrefix(strings.TrimLeft(content[end+1:], " "), ":") {
			return ""
		}
		return k
	case '\'':
		var b strings.Builder
		for i := 1; i < len(content); i++ {
			if content[i] == '\'' {
				if i+1 < len(content) && content[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				if !strings.HasPrefix(strings.TrimLeft(content[i+1:], " "), ":") {
					return ""
				}
				return b.String()
			}
			b.WriteByte(content[i])
		}
		return ""
	}
	for i := 0; i < len(content); i++ {
		if content[i] == ':' && (i+1 == len(content) || content[i+1] == ' ' || content[i+1] == '\t') {
			return strings.TrimRight(content[:i], " \t")
		}
	}
	return ""
}

// secondDocumentLine returns the line of a "---" marker that follows content, or 0. yaml.v2
// silently ignores every document after the first, which would drop settings without a word.
func secondDocumentLine(src []byte) int {
	seenContent := false
	for i, l := range strings.Split(string(src), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "---" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "---\t") {
			if seenContent {
				return i + 1
			}
			if rest := strings.TrimSpace(strings.TrimPrefix(l, "---")); rest != "" && rest[0] != '#' {
				seenContent = true
			}
			continue
		}
		if l == "..." || strings.HasPrefix(l, "... ") {
			continue
		}
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' && t[0] != '%' {
			seenContent = true
		}
	}
	return 0
}

// UnmarshalJSON decodes a Go duration string such as "10s" or "1m30s"; null leaves d as is.
// Negative durations and bare numbers are errors.
