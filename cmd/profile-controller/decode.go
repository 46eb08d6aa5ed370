package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Strict decoding of the config file on go.yaml.in/yaml/v3. The library does the checking:
// with KnownFields(true) an unknown field is an error, and it comes back with the duplicate keys
// and type errors (Duration's own included) in one *yaml.TypeError. This file only adds what the
// library does not say: the dotted path of the field each message is about, a did-you-mean
// hint, a refusal of numbers and booleans where a string is expected (decode_fields.go), the
// problems a duplicate key hides (withoutDuplicates), and one line per problem, in line order.

// problem is one thing wrong with a config file.
type problem struct {
	line int    // 1-based; 0 when the library gave none
	text string // one line, without the "line N: " prefix
}

func (p problem) String() string {
	if p.line > 0 {
		return fmt.Sprintf("line %d: %s", p.line, p.text)
	}
	return p.text
}

// decodeError holds every problem of a config file, one per line of its message, in line order.
type decodeError struct{ problems []problem }

func (e *decodeError) Error() string {
	lines := make([]string, len(e.problems))
	for i, p := range e.problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// decodeConfig decodes YAML strictly into a Config. An empty document (or only comments) is the
// zero Config. Errors carry no file name; their message has one line per problem.
func decodeConfig(src []byte) (Config, error) {
	var doc yaml.Node
	docs := yaml.NewDecoder(bytes.NewReader(src))
	if err := docs.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, nil
		}
		return Config{}, &decodeError{[]problem{syntaxProblem(err)}}
	}
	idx := indexFields(&doc)
	problems := idx.problems
	var second yaml.Node
	switch err := docs.Decode(&second); {
	case errors.Is(err, io.EOF):
	case err != nil:
		problems = append(problems, syntaxProblem(err))
	default:
		// yaml.v3 reads one document per Decode: a second one would be dropped without a word.
		problems = append(problems, problem{second.Line, "a second YAML document starts here; put everything in one"})
	}

	cfg, msgs, err := strictDecode(src)
	if err != nil {
		problems = append(problems, syntaxProblem(err))
	}
	if hasDuplicate(msgs) {
		// yaml.v3 checks nothing else in a mapping that holds a duplicate key; decode once more
		// without the duplicates so that the rest of that mapping is checked in this pass too.
		msgs = append(duplicatesOnly(msgs), withoutDuplicates(&doc)...)
	}
	for _, m := range msgs {
		problems = append(problems, idx.translate(m))
	}
	if len(problems) > 0 {
		return Config{}, &decodeError{sortProblems(problems)}
	}
	return cfg, nil
}

// strictDecode decodes src into a Config with KnownFields and returns yaml.v3's type-error
// messages ("line N: ..."); err is any other decode failure (syntax, excessive aliasing).
func strictDecode(src []byte) (Config, []string, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&cfg)
	var te *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return cfg, nil, nil
	case errors.As(err, &te):
		return cfg, te.Errors, nil
	}
	return cfg, nil, err
}

var (
	lineMsgRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	dupKeyRE   = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	dupFieldRE = regexp.MustCompile(`^field (.*) already set in type \S+$`)
	unknownRE  = regexp.MustCompile(`^field (.*) not found in type \S+$`)
	typeRE     = regexp.MustCompile("^cannot unmarshal (\\S+?)(?: `(.*)`)? into (.+)$")
	syntaxRE   = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
)

func hasDuplicate(msgs []string) bool { return len(duplicatesOnly(msgs)) > 0 }

func duplicatesOnly(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if l := lineMsgRE.FindStringSubmatch(m); l != nil && (dupKeyRE.MatchString(l[2]) || dupFieldRE.MatchString(l[2])) {
			out = append(out, m)
		}
	}
	return out
}

// withoutDuplicates removes every later duplicate key from doc, decodes the result strictly and
// returns yaml.v3's messages with their lines mapped back to doc's source. It returns nil when
// the document cannot be re-encoded (the duplicates are still reported by the first decode).
func withoutDuplicates(doc *yaml.Node) []string {
	dropDuplicates(doc, map[*yaml.Node]bool{})
	src, err := yaml.Marshal(doc)
	if err != nil {
		return nil
	}
	var again yaml.Node
	if yaml.Unmarshal(src, &again) != nil {
		return nil
	}
	lines := map[int]int{}
	mapLines(doc, &again, lines)
	_, msgs, err := strictDecode(src)
	if err != nil {
		return nil
	}
	for i, m := range msgs {
		if l := lineMsgRE.FindStringSubmatch(m); l != nil {
			n, _ := strconv.Atoi(l[1])
			msgs[i] = fmt.Sprintf("line %d: %s", lines[n], l[2])
		}
	}
	return msgs
}

// dropDuplicates keeps the first of each key in every mapping below n.
func dropDuplicates(n *yaml.Node, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.MappingNode {
		keys := map[string]bool{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			id := fmt.Sprint(k.Kind, "\x00", k.Value)
			if keys[id] {
				continue
			}
			keys[id] = true
			kept = append(kept, k, n.Content[i+1])
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		dropDuplicates(c, seen)
	}
}

// mapLines maps the line of every node of b, a re-parse of a's encoding, to the line of a's node.
func mapLines(a, b *yaml.Node, lines map[int]int) {
	if _, ok := lines[b.Line]; !ok {
		lines[b.Line] = a.Line
	}
	for i := range min(len(a.Content), len(b.Content)) {
		mapLines(a.Content[i], b.Content[i], lines)
	}
}

// syntaxProblem turns a yaml.v3 parse error ("yaml: line 3: did not find ...") into a problem.
func syntaxProblem(err error) problem {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if m := syntaxRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return problem{line, "invalid YAML: " + m[2]}
	}
	return problem{0, "invalid YAML: " + msg}
}

func sortProblems(ps []problem) []problem {
	seen := map[problem]bool{}
	out := ps[:0:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].line < out[j].line })
	return out
}
