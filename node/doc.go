// Package node composes registry, broker and election into one meshpool node
// and implements its two roles.
//
// Every node is a worker: it listens on tasks.<nodeID>, acks a task at once,
// works it and publishes the result on results (worker.go). It refuses a
// task of a term older than the newest it has seen, or newer than etcd
// says, so a deposed master's tasks are not worked.
//
// The node that wins the election is also the master for as long as its
// leadership context lives (lead.go). A master does not take tasks itself;
// once demoted it is an ordinary worker again. Its duties, by file:
//
//   - admit.go: submissions on tasks.submit and tasks.submit.<submitter>,
//     from any client through any node. A durable task (the default) is
//     written to etcd, fenced by the master's term, before the submitter
//     is told it is accepted; a task with durability none is kept only in
//     the master's memory. The uuid is the idempotency key: a known uuid is
//     answered with where its task stands (and its result), never run
//     again; the same uuid with another request is a conflict.
//   - submitters.go: what each submitter holds, and its bounds; a flood
//     from one is refused from the subject, before it is decoded.
//   - place.go: each task goes to the live worker with the fewest tasks, at
//     random among equals (loadbook.go); one that does not take it is
//     passed, a task whose worker left or timed out goes to another, and a
//     change of worker is written before the task is sent.
//   - record.go: a result is taken only from a sending of the task (worker,
//     term, attempt) and only when it is right; it is written once, fenced,
//     and then answers re-submissions for the result retention.
//   - tasktable.go: the state all of that shares, and the claim protocol
//     that keeps one operation per task at a time.
//
// A new master loads every task record (taskstore.Load) and resumes the
// pending ones, on their own worker when it is still a member. The
// guarantees this gives are in docs/guarantees.md.
package node
