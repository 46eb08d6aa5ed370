package reconciler

import "github.com/go-logr/logr"

// keyLogs makes, for one base logger, the logger of each key: base with "profile", key added
// to every line it writes.
//
// It is what base.WithValues("profile", key) would be, without its cost: a zap-backed logger
// encodes the values of WithValues at once, which cost about 15 µs per reconcile while nearly
// every reconcile logs nothing. Here the value is added only to lines that are written, and
// the base's sink is made one call deeper once, not per key.
type keyLogs struct {
	base       logr.Logger
	orig, deep logr.LogSink
}

func newKeyLogs(base logr.Logger) keyLogs {
	l := keyLogs{base: base, orig: base.GetSink()}
	if l.orig != nil {
		l.deep = newKeySink(l.orig, "").base
	}
	return l
}

// of returns the logger of key.
func (l keyLogs) of(key string) logr.Logger {
	if l.orig == nil {
		return l.base
	}
	return l.base.WithSink(&keySink{orig: l.orig, base: l.deep, key: key})
}

// keySink adds "profile", key to each Info and Error of its base sink.
type keySink struct {
	orig logr.LogSink // the sink given
	base logr.LogSink // orig one call deeper: the caller is keySink's caller, not keySink
	key  string
}

func newKeySink(orig logr.LogSink, key string) *keySink {
	s := &keySink{orig: orig, base: orig, key: key}
	if cd, ok := orig.(logr.CallDepthLogSink); ok {
		s.base = cd.WithCallDepth(1)
	}
	return s
}

var (
	_ logr.LogSink          = (*keySink)(nil)
	_ logr.CallDepthLogSink = (*keySink)(nil)
)

func (s *keySink) Init(info logr.RuntimeInfo) { s.base.Init(info) }

func (s *keySink) Enabled(level int) bool { return s.base.Enabled(level) }

func (s *keySink) Info(level int, msg string, kv ...any) {
	s.base.Info(level, msg, s.with(kv)...)
}

func (s *keySink) Error(err error, msg string, kv ...any) {
	s.base.Error(err, msg, s.with(kv)...)
}

func (s *keySink) with(kv []any) []any {
	return append([]any{"profile", s.key}, kv...)
}

// WithValues and WithName are rare (never on the reconcile path): they fix the key in.
func (s *keySink) WithValues(kv ...any) logr.LogSink {
	return s.orig.WithValues(s.with(kv)...)
}

func (s *keySink) WithName(name string) logr.LogSink {
	return newKeySink(s.orig.WithName(name), s.key)
}

// WithCallDepth passes a further depth on to the base sink.
func (s *keySink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.orig.(logr.CallDepthLogSink); ok {
		return newKeySink(cd.WithCallDepth(depth), s.key)
	}
	return s
}
