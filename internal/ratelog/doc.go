// Package ratelog bounds what a node's logs can be made to say: a
// slog.Handler that cuts every quoted value to a fixed length, and lets
// through at most one line per interval of each warning its call site marks
// as repeatable, then says how many it held back.
//
// A call site marks a line with Limit (one budget per message) or Key (one
// per message and key):
//
//	log.Warn("task refused", ratelog.Limit, "reason", reason)
//
// Lines without a mark are never held back, only bounded.
package ratelog
