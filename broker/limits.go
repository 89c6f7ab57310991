package broker

import "fmt"

// Default limits of the embedded server, used for zero fields of Config.
const (
	// DefaultMaxConnections bounds the client connections of one server,
	// unless the process's open-file limit is lower (see Config.MaxConnections).
	DefaultMaxConnections = 1024
	// DefaultMaxSubscriptions bounds the subscriptions of one client
	// connection. A client needs few: a submitter one for results, one for
	// events and one for its request inboxes; a node's own connection
	// about 16 (nodeSubscriptions).
	DefaultMaxSubscriptions = 1000
	// DefaultMaxPending bounds the bytes the server holds for one client
	// that does not read fast enough (nats-server's own default): 32
	// messages at message.MaxSize.
	DefaultMaxPending = 64 << 20
)

// nodeSubscriptions is about what a node's own connection subscribes: the
// master's submission, results and operations subjects (about 10), the
// worker's tasks and cancels (2), the results and events relayed to the
// page's streams (2) and the request inboxes (1), rounded up. A
// MaxSubscriptions below it would refuse the node its own subjects.
const nodeSubscriptions = 32

// fileShare is the share of the process's open files given to NATS client
// connections: the rest is for the routes (a few per peer), the etcd client,
// the HTTP server and its streams, the log files and the tasks' commands
// and their pipes.
const fileShare = 2

// maxConnections is the default connection limit for a process that may
// open files files: DefaultMaxConnections, or 1/fileShare of the files
// when that is less. ok false (the limit unknown) means
// DefaultMaxConnections.
func maxConnections(files uint64, ok bool) int {
	if !ok || files/fileShare >= DefaultMaxConnections {
		return DefaultMaxConnections
	}
	return int(max(files/fileShare, 1))
}

// validLimits reports negative limits or a subscription limit the node's own
// connection cannot live with.
func (c Config) validLimits() error {
	if c.MaxConnections < 0 {
		return fmt.Errorf("%w: max connections %d: want 0 (default) or at least 1", ErrInvalidConfig, c.MaxConnections)
	}
	if c.MaxSubscriptions != 0 && c.MaxSubscriptions < nodeSubscriptions {
		return fmt.Errorf("%w: max subscriptions %d: want 0 (default) or at least %d, what a node's own connection needs",
			ErrInvalidConfig, c.MaxSubscriptions, nodeSubscriptions)
	}
	if c.MaxPending < 0 {
		return fmt.Errorf("%w: max pending %d: want 0 (default) or at least 1 byte", ErrInvalidConfig, c.MaxPending)
	}
	return nil
}
