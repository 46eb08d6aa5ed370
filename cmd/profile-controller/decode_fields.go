package main

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Locating yaml.v3's messages in the config file: which field a "line N: cannot unmarshal ..."
// is about, its dotted path, what a did-you-mean hint should offer, and the scalar checks
// the library does not make.

// field is one key of the config file, found by walking its node tree against the Go type.
type field struct {
	path      string // dotted, e.g. "templates.run"
	prefix    string // path of the mapping that holds the key ("" at the top level)
	key       string
	keyLine   int
	valueLine int
	typ       reflect.Type // what the value decodes into; nil for an unknown key
	parent    reflect.Type // the struct or map type that holds the key
}

// fieldIndex locates yaml.v3's messages (which name a line and a Go type, not a field) and
// collects the problems the library does not report.
type fieldIndex struct {
	fields   []field
	problems []problem
}

var (
	configType      = reflect.TypeFor[Config]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

func indexFields(doc *yaml.Node) *fieldIndex {
	x := &fieldIndex{}
	x.walk(doc, configType, "", map[*yaml.Node]bool{})
	return x
}

func (x *fieldIndex) walk(n *yaml.Node, t reflect.Type, prefix string, seen map[*yaml.Node]bool) {
	n = deref(n)
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			x.walk(c, t, prefix, seen)
		}
		return
	}
	if n.Kind != yaml.MappingNode || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	var names map[string]reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		names = yamlFields(t)
	case reflect.Map:
	default:
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || v == nil {
			continue
		}
		if k.ShortTag() == "!!merge" {
			x.walk(v, t, prefix, map[*yaml.Node]bool{})
			for _, c := range v.Content { // a sequence of mappings to merge
				x.walk(c, t, prefix, map[*yaml.Node]bool{})
			}
			continue
		}
		f := field{path: joinPath(prefix, k.Value), prefix: prefix, key: k.Value, keyLine: k.Line, valueLine: v.Line, parent: t}
		if t.Kind() == reflect.Map {
			f.typ = t.Elem()
		} else {
			f.typ = names[k.Value]
		}
		x.fields = append(x.fields, f)
		if f.typ != nil {
			x.checkScalar(f, v)
			x.walk(v, f.typ, f.path, seen)
		}
	}
}

// checkScalar refuses a number or boolean for a string field and a fraction for an integer one.
// yaml.v3 would take the first as its source text and truncate the second.
func (x *fieldIndex) checkScalar(f field, v *yaml.Node) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return
	}
	tag := v.ShortTag()
	switch {
	case f.typ.Kind() == reflect.String && tag != "!!str":
		x.problems = append(x.problems, problem{v.Line, fmt.Sprintf(
			"field %q: expected a string, got %s; quote the value so YAML reads it as a string", f.path, tagKind(tag))})
	case f.typ.Kind() == reflect.Int && tag == "!!float":
		x.problems = append(x.problems, problem{v.Line, fmt.Sprintf("field %q: expected an integer, got %s", f.path, v.Value)})
	}
}

// translate turns one yaml.v3 type-error message into a problem that names the field.
func (x *fieldIndex) translate(msg string) problem {
	m := lineMsgRE.FindStringSubmatch(msg)
	if m == nil {
		return problem{0, strings.Join(strings.Fields(msg), " ")}
	}
	line, _ := strconv.Atoi(m[1])
	rest := strings.Join(strings.Fields(m[2]), " ")
	if d := dupKeyRE.FindStringSubmatch(rest); d != nil {
		key, err := strconv.Unquote(d[1])
		if err != nil {
			key = d[1]
		}
		return problem{line, fmt.Sprintf("duplicate field %q (first set at line %s)", x.keyPath(line, key), d[2])}
	}
	if d := dupFieldRE.FindStringSubmatch(rest); d != nil {
		return problem{line, fmt.Sprintf("duplicate field %q", x.keyPath(line, d[1]))}
	}
	if u := unknownRE.FindStringSubmatch(rest); u != nil {
		f, ok := x.key(line, u[1])
		if !ok {
			return problem{line, fmt.Sprintf("unknown field %q", u[1])}
		}
		text := fmt.Sprintf("unknown field %q", f.path)
		if f.parent != nil && f.parent.Kind() == reflect.Struct {
			if s := suggest(f.key, sortedKeys(yamlFields(f.parent))); s != "" {
				text += fmt.Sprintf(" (did you mean %q?)", joinPath(f.prefix, s))
			}
		}
		return problem{line, text}
	}
	if t := typeRE.FindStringSubmatch(rest); t != nil {
		if t[3] == configType.String() {
			return problem{line, fmt.Sprintf("the top level: expected a mapping of fields, got %s", tagKind(t[1]))}
		}
		f, ok := x.value(line, t[3])
		if !ok {
			return problem{line, fmt.Sprintf("expected %s, got %s", t[3], tagKind(t[1]))}
		}
		return problem{line, fmt.Sprintf("field %q: expected %s, got %s", f.path, goKind(f.typ), tagKind(t[1]))}
	}
	if f, ok := x.value(line, ""); ok { // e.g. a Duration's own message
		return problem{line, fmt.Sprintf("field %q: %s", f.path, rest)}
	}
	return problem{line, rest}
}

// key finds the known or unknown key named name on line.
func (x *fieldIndex) key(line int, name string) (field, bool) {
	for _, f := range x.fields {
		if f.keyLine == line && f.key == name {
			return f, true
		}
	}
	return field{}, false
}

func (x *fieldIndex) keyPath(line int, name string) string {
	if f, ok := x.key(line, name); ok {
		return f.path
	}
	return name
}

// value finds the field whose value starts on line, preferring one that decodes into the Go
// type named goType (several fields share a line in flow style or through an alias).
func (x *fieldIndex) value(line int, goType string) (field, bool) {
	var found field
	ok := false
	for _, f := range x.fields {
		if f.valueLine != line || f.typ == nil {
			continue
		}
		if f.typ.String() == goType || goType == "" && reflect.PointerTo(f.typ).Implements(unmarshalerType) {
			return f, true
		}
		if !ok {
			found, ok = f, true
		}
	}
	return found, ok
}

// yamlFields maps the yaml name of each exported field of t to its type, the way yaml.v3 names
// them (the tag's name, else the lowercased Go name).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// goKind names a Go type the way a YAML author thinks of it.
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

// tagKind names a YAML tag the way a YAML author thinks of it.
func tagKind(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	case "!!binary":
		return "binary data"
	case "!!timestamp":
		return "a timestamp"
	}
	return "a value tagged " + tag
}

// nodeKind names what a node holds, for errors about a value of the wrong kind.
func nodeKind(n *yaml.Node) string {
	switch deref(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return tagKind(n.ShortTag())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
