// Package schedule is the pure part of recurring tasks (issue 13) and their
// storage: a Schedule names a cron expression and the task each of its ticks
// submits. The master keeps them in etcd at keyspace.Schedule(prefix, name),
// writes them through its fenced taskstore.Writer (PutValue, Delete), and
// for each one, at its ticks:
//
//	tick, skipped, ok := s.Due(now)   // the tick to fire, if any
//	submit s.Submit(tick)             // TaskUUID(name, created, tick): a tick is one task
//	s.Last = tick; write s.Encode()   // fired: not due again before the next tick
//
// A tick fired twice (a master that fails between the submission and the
// write of Last, and its successor) submits the same UUID, which the
// master's idempotency runs once.
//
// Catch-up rule: ticks missed while no master ran are not replayed one by
// one: the latest fires once, the others are counted as skipped (Due).
//
// Cron expressions are robfig/cron's standard ones: five fields (minute,
// hour, day of month, month, day of week), descriptors (@hourly, @daily,
// @weekly, @monthly, @yearly, @every 5m), and an optional CRON_TZ=Zone or
// TZ=Zone prefix. Without a zone they are in UTC, so that every master
// computes the same ticks whatever its local time.
package schedule
