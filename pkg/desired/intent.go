package desired

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Keys and values of gateway_state.json that the controller reads.
const (
	keyDesired = "desired_state"
	keyGateway = "gateway_state"
	keyServed  = "served_profiles"

	stateRunning       = "running"
	stateStopped       = "stopped"
	stateDraining      = "draining"
	stateDegraded      = "degraded"
	stateStarting      = "starting"
	stateStartupFailed = "startup_failed"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decodeState decodes the bytes of a gateway_state.json: UTF-8 with or without a BOM, exactly one
// JSON object, nothing but white space after it. Numbers stay json.Number so no value is lost or
// refused for being out of float64 range. The error is one line and does not name the file.
func decodeState(b []byte) (map[string]any, error) {
	b = bytes.TrimPrefix(b, utf8BOM)
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF {
			return nil, errors.New("empty, want a JSON object")
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object (top level is %s)", jsonKind(v))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON object at byte %d", dec.InputOffset())
	}
	return doc, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// IntentFromState maps a decoded gateway_state.json (nil map when there is no file) to
// boot and runtime intents, plus a warning for unusable values.
//
// It implements the intent table of docs/behaviour.md. readErr is why the file could not be used (unreadable,
// too big, not a JSON object); it wins over everything else and gives Down/Hold with a warning.
// Without readErr, hasFile false gives Down/Hold silently. An explicit null counts as an absent key.
// The boot intent is never Hold. The warning is one line that does not name the file (the caller
// adds the path), "" when there is nothing to report. It is pure and never panics.
func IntentFromState(doc map[string]any, hasFile bool, readErr error) (boot, runtime Intent, warning string) {
	if readErr != nil {
		return Down, Hold, fmt.Sprintf("unusable, ignored: %s", oneLine(readErr.Error()))
	}
	if !hasFile {
		return Down, Hold, ""
	}
	if doc == nil {
		return Down, Hold, "unusable, ignored: not a JSON object"
	}
	if v, ok := doc[keyDesired]; ok && v != nil {
		switch v {
		case stateRunning:
			return Up, Up, ""
		case stateStopped:
			return Down, Down, ""
		}
		return Down, Hold, fmt.Sprintf("%s is %s, want %q or %q; ignored", keyDesired, describeValue(v), stateRunning, stateStopped)
	}
	v, ok := doc[keyGateway]
	if !ok || v == nil {
		return Down, Hold, ""
	}
	switch v {
	case stateRunning, stateDraining, stateDegraded:
		return Up, Up, ""
	case stateStopped, stateStartupFailed:
		return Down, Down, ""
	case stateStarting:
		return Down, Hold, ""
	}
	return Down, Hold, fmt.Sprintf("%s is %s, an unknown state; ignored", keyGateway, describeValue(v))
}

// describeValue renders a decoded JSON value for a one-line message, shortened.
func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return shortQuote(s)
	}
	return jsonKind(v) + " " + shortQuote(compactJSON(v))
}

const maxLabelLen = 64

// shortQuote quotes s (escaping newlines and invalid UTF-8), cut at maxLabelLen bytes.
func shortQuote(s string) string {
	if len(s) > maxLabelLen {
		return strconv.Quote(s[:maxLabelLen]) + "..."
	}
	return strconv.Quote(s)
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	if !bytes.ContainsAny([]byte(s), "\r\n") {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// compactJSON renders a decoded value as compact JSON without HTML escaping.
func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// applyState copies the keys the controller reads from a decoded state file into p.
func applyState(p *Profile, doc map[string]any) {
	p.DesiredState, p.DesiredStateJSON = stateValue(doc, keyDesired)
	p.GatewayState, p.GatewayStateJSON = stateValue(doc, keyGateway)
	if list, ok := doc[keyServed].([]any); ok {
		p.Served = make([]string, 0, len(list))
		for _, v := range list {
			if s, ok := v.(string); ok {
				p.Served = append(p.Served, s)
			}
		}
	}
}

func stateValue(doc map[string]any, key string) (str, raw string) {
	v, ok := doc[key]
	if !ok || v == nil {
		return "", ""
	}
	if s, ok := v.(string); ok {
		return s, compactJSON(s)
	}
	return "", compactJSON(v)
}

// PriorState is the prior_state shown in boot logs and reconcile output: desired_state verbatim
// when present (even if invalid), else gateway_state with "draining" and "degraded" shown as
// "running", else "None". A value that is not a plain token (letters, digits, '_', '-', '.',
// at most 64 bytes) is shown Go-quoted and cut at 64 bytes ("..." after the closing quote), so a
// key=value log line stays one line and parseable.
func (p Profile) PriorState() string {
	if p.DesiredStateJSON != "" {
		return stateLabel(p.DesiredState, p.DesiredStateJSON)
	}
	if p.GatewayStateJSON != "" {
		switch p.GatewayState {
		case stateDraining, stateDegraded:
			return stateRunning
		}
		return stateLabel(p.GatewayState, p.GatewayStateJSON)
	}
	return "None"
}

// stateLabel shows a string value as itself and any other value as its JSON text, quoted
// unless it is a plain token.
func stateLabel(str, raw string) string {
	s := raw
	if raw[0] == '"' {
		s = str
	}
	if isPlainToken(s) {
		return s
	}
	return shortQuote(s)
}

func isPlainToken(s string) bool {
	if s == "" || len(s) > maxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
