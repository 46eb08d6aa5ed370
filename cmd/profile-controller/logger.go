package main

import (
	"flag"
	"io"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// loggerName names every line the controller logs ("logger":"controller"); klog's lines (from
// client-go's workqueue) are "controller.klog".
const loggerName = "controller"

// newLogger returns the controller's logr.Logger on zap, writing format ("json" or "console")
// to w, with V levels up to verbosity enabled. Each line names the logger and the caller; the
// level reads "info", "error" or, for V(1) and above, "debug", and info lines carry their V level
// as a number ("v":4). klog, which client-go's workqueue logs through, is routed into the same
// logger with the same verbosity. Call flush before exiting.
func newLogger(format string, verbosity int, w io.Writer) (logr.Logger, func()) {
	log, flush, _ := newLoggerLevel(format, verbosity, w)
	return log, flush
}

// newLoggerLevel is newLogger that also returns a function changing the verbosity of the
// logger and of klog while they are in use (run's live configuration); it is safe for
// concurrent use with logging.
func newLoggerLevel(format string, verbosity int, w io.Writer) (logr.Logger, func(), func(int)) {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = levelEncoder(false)
	var encoder zapcore.Encoder
	if format == "json" {
		encoder = zapcore.NewJSONEncoder(enc)
	} else {
		enc.EncodeLevel = levelEncoder(true)
		encoder = zapcore.NewConsoleEncoder(enc)
	}
	level := zap.NewAtomicLevelAt(zapcore.Level(-verbosity))
	core := zapcore.NewCore(encoder, zapcore.AddSync(w), level)
	zl := zap.New(core, zap.AddCaller())
	log := zapr.NewLoggerWithOptions(zl, zapr.LogInfoLevel("v")).WithName(loggerName)
	flush := func() { _ = zl.Sync() }

	klog.SetLoggerWithOptions(log.WithName("klog"), klog.ContextualLogger(true), klog.FlushLogger(flush))
	// klog checks its own verbosity before it calls the logger: give it ours.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(verbosity))
	setVerbosity := func(v int) {
		level.SetLevel(zapcore.Level(-v))
		_ = fs.Set("v", strconv.Itoa(v))
	}
	return log, flush, setVerbosity
}

// levelEncoder writes zap's levels by name, and every V level above 0 (zap levels below info,
// which print as "Level(-4)" by default) as "debug"; the numeric V level is in "v".
func levelEncoder(capital bool) zapcore.LevelEncoder {
	return func(l zapcore.Level, pe zapcore.PrimitiveArrayEncoder) {
		if l < zapcore.InfoLevel {
			l = zapcore.DebugLevel
		}
		if capital {
			pe.AppendString(l.CapitalString())
			return
		}
		pe.AppendString(l.String())
	}
}
