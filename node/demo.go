package node

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/message"
)

// Triple is the handler of the demo kind, message.KindTriple: the article's
// job, the payload number times three after a random time in workTime.
func Triple(workTime WorkTime) meshpool.Handler {
	return meshpool.HandlerFunc(func(ctx context.Context, t *meshpool.Task) (json.RawMessage, error) {
		n, err := message.TripleNumber(t.Payload)
		if err != nil {
			return nil, err
		}
		d := workTime.Min
		if span := workTime.Max - workTime.Min; span > 0 {
			d += rand.N(span + 1)
		}
		if d > 0 {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return message.TripleResult(n), nil
	})
}

func (n *Node) workerConfig() workerConfig {
	return workerConfig{handlers: n.cfg.Handlers, slots: n.cfg.Slots, timeout: n.cfg.TaskTimeout, maxResult: n.cfg.MaxResult}
}

// ResultSlack is how long after --task-timeout the master waits for a
// task's result before it gives the task to another worker: the worker
// ends the handler's context at the timeout itself and answers with a
// "timed out" error, which the master records; only when that answer does
// not come (the worker is lost, or a message is) is the task placed again.
// It is the timeout itself, at most 10 s; a command handler gets half of
// it between SIGTERM and SIGKILL (KillGrace).
func ResultSlack(taskTimeout time.Duration) time.Duration { return min(taskTimeout, 10*time.Second) }

// KillGrace is how long a command handler whose task timed out has
// between SIGTERM and SIGKILL: half the ResultSlack, so that its error
// reaches the master before the master gives up on it.
func KillGrace(taskTimeout time.Duration) time.Duration { return ResultSlack(taskTimeout) / 2 }
