// Package taskstore keeps the master's tasks in etcd, so that a new master
// can resume them and exactly one result is recorded per task.
//
// Every accepted task is a JSON Record at <prefix>/tasks/<uuid>. A master
// reads them all with Load when its term starts, then writes through one
// Writer for the rest of the term. The Writer fences every write with the
// master's election key (the txn only applies while that key still has the
// term's create revision), so the writes of a deposed master fail with
// ErrFenced, and it batches concurrent writes into few txns (group commit)
// without delaying a lone write. The master's other records under the
// prefix, its schedules, go through the same Writer (PutValue, Delete), so
// they are fenced alike.
//
// A completed task is either deleted at once or kept as Done for a retention
// time under a shared lease: one lease per time bucket, not one per task.
//
// The writes leave every revision in etcd's history: a Compactor, run by
// the master, compacts what is older than its retention, and Alarms shows
// etcd's NOSPACE alarm, under which every write fails with ErrNoSpace.
package taskstore
