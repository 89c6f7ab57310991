// Package node composes registry, broker and election into one meshpool node
// and implements its two roles.
//
// Every node is a worker: it listens on tasks.<nodeID>, acks a task at once,
// works it and publishes the result on results. The node that wins the
// election is also the master for as long as its leadership context lives: it
// generates tasks, gives each to the live worker with the fewest tasks in
// flight, and tracks every task until its result comes back. A master does
// not take tasks itself; once demoted it is an ordinary worker again.
package node
