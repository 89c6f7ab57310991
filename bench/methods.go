package main

import (
	"fmt"
	"strings"
)

// methods is the report's "How each figure is measured" section.
func methods(cfg config) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n\n", args...) }
	p("**Throughput** (one 3-node cluster; the load generator dials the client port of a worker, not the master). Each run measures, in this order:")
	p("- *serial etcd puts/s*: one clientv3 client doing sequential 200-byte puts for %s.\n"+
		"- *etcd put capacity*: %d goroutines over 4 clientv3 clients doing single 200-byte puts for %s; keys/s. A durable task costs two etcd writes "+
		"(its pending record, then its completion), so the bound is capacity ÷ 2.\n"+
		"- *etcd batched capacity*: 16 goroutines over 4 clients, each sending Txns of 64 puts for %s; keys/s ÷ 2. meshpool's master batches its "+
		"task writes into fenced Txns (group commit), so this is the nearer bound.\n"+
		"- etcd's history is compacted (physically) before each load, so that no run pays for the last one's revisions.\n"+
		"- *durable throughput*: `client.Load(ctx, client.LoadSpec{N: %d, Concurrency: %d, Wait: true})`; tasks/s = results ÷ time from the first "+
		"submission to the last result (results are polled every 20 ms). A run shorter than 1 s is flagged in the progress output.\n"+
		"- *writes per Txn*: 2 × tasks ÷ the Txn requests etcd counted (`grpc_server_msg_received_total{grpc_method=\"Txn\"}` on its /metrics) during the load.\n"+
		"- *raw NATS request-reply/s*: a responder subscribed on the master's client port, %d goroutines doing `Request` through one connection "+
		"to the worker's client port (where the load generator connects) for %s, so each request crosses the same route as a submission.\n"+
		"- *non-durable throughput*: the same `Load` with %d tasks and `Durability: message.DurabilityNone`.",
		cfg.window, cfg.inflight, cfg.window, cfg.window, cfg.durableN, cfg.inflight, cfg.inflight, cfg.window, cfg.noneN)
	p("**CPU per task**: utime+stime+cutime+cstime from /proc/<pid>/stat (10 ms ticks; cutime and cstime are the processes it ran and waited for, " +
		"which only an --exec node has) of the master, the worker the client is connected to, the other worker and etcd, " +
		"and getrusage(RUSAGE_SELF) of the bench process itself (the load generator, with whatever else the bench does meanwhile, which is little), " +
		"read just before and just after each load, divided by the tasks. *CPU bound* = cores (nproc) × 10⁶ ÷ the sum over all processes: the task rate " +
		"at which these processes alone would use every core. The machine is shared, so other people's processes take their share too: " +
		"*the whole machine* is the busy share of all cores from the first line of /proc/stat (everything but idle and iowait) over the same window.")
	p("**Throughput with etcd's data on disk**: etcd restarted with its data dir under %s (ext4 on the machine's disk, so every commit waits "+
		"for an fsync, as in production), a fresh 3-node cluster; each run: the serial put rate of that etcd for %s, then the same durable load as above "+
		"with its CPU per task, then %d sequential durable `Submit` + `Wait` as under Latency. "+
		"The ratio shows what batching gains over one write per request when a write costs an fsync.", diskDir, cfg.window, cfg.latency)
	p("**Latency**: %d sequential `Submit` + `Wait` on fresh uuids through a worker (after `Follow` and 20 warm-up tasks), durable and then "+
		"non-durable. Baseline, in the same run: a responder subscribed through the third node's client port, %d sequential requests through the "+
		"worker's port, so each crosses one route. The p99 is the sample at index ⌊0.99·(n−1)⌋ of the sorted samples.", cfg.latency, cfg.latency)
	p("**JetStream work queues** (group jetstream; nats-server and nats.go's jetstream package from the module meshpool pins, so the "+
		"nats-server meshpool embeds). Each run measures three systems in turn, each on fresh processes and a fresh store: *R1*, one "+
		"server with its file store in /dev/shm; *R3*, three servers clustered over routes, file store in /dev/shm; *R1 synced*, one "+
		"server with SyncAlways (every write to the store is synced) and its store under %s, beside meshpool with etcd on disk. "+
		"Every server and every worker is a process of its own (this bench binary run again with a hidden argument), on its own "+
		"address 127.0.255.x (ports %d and %d). The stream has subject `%s`, WorkQueuePolicy, file storage and 1 or 3 replicas; one "+
		"durable pull consumer with explicit acks (the other settings JetStream's defaults); %d worker processes, worker k connected "+
		"to server k, each `Consume` on that consumer and `Ack` of every message (not a double ack), publishing nothing else: the "+
		"jobs do no work, as the demo kind with --work-time 0s. In R3 the load generator connects to a server that is not the "+
		"stream's leader, as meshpool's connects to a worker and not the master, so each job crosses a route to be stored.\n\n"+
		"- *throughput*: %d `PublishAsync` of a %d-byte body with at most %d pub acks pending (a job is enqueued when its pub ack "+
		"comes: stored, and in R3 on a majority); jobs/s = jobs ÷ time from the first publish to the last worker's ack seen. The "+
		"load generator sees the acks by subscribing to them (`$JS.ACK.>`), as any client may, so it gets each ack when the server "+
		"that holds the consumer does, as meshpool's load generator gets each result on `results` when the master does; neither "+
		"waits for the store to record the completion. After the timed part the stream must be empty (every job acked and removed) "+
		"or the run fails. The time is that of the last ack's arrival; meshpool's `Load` notices its last result on a 20 ms poll, "+
		"which counts up to 20 ms against meshpool, under 1 %% of a run of several seconds.\n"+
		"- *latency*: after 20 warm-up jobs, %d sequential jobs, each timed from before its `Publish` until both its pub ack and "+
		"its worker's ack have come, as meshpool's is `Submit` (answered once the master has accepted the task; a durable one once it is recorded) until its result is seen.\n"+
		"- *CPU per job*: as for meshpool, utime+stime of every server and worker from /proc/<pid>/stat and getrusage of the bench "+
		"(the load generator), before and after the throughput load, ÷ the jobs.\n"+
		"- *the comparison*: meshpool's lines are the shared group's durable and non-durable figures and the disk group's; each "+
		"ratio meshpool ÷ JetStream divides run i by run i of this bench run (minutes apart, not interleaved), and the table gives "+
		"the median of those ratios. The statement under it calls meshpool ahead or behind where the median ratio is better or "+
		"worse by more than 10 %%, level otherwise.",
		diskDir, jsClientPort, jsRoutePort, jsSubject, jsWorkers, cfg.durableN, len(echoBody), cfg.inflight, cfg.latency)
	p("*meshpool durable: etcd, 3 members* (group jetstream, measured in each run right after R3, so that the two pair run by run): "+
		"three etcd processes clustered over their peer ports, each on its own address 127.0.254.Y (Y from 250; ports %d and %d) with "+
		"its data dir in /dev/shm; a fresh 3-node meshpool cluster whose nodes get all three endpoints in --etcd; the durable load of "+
		"the throughput group (%d tasks, %d in flight, etcd compacted first), then %d sequential durable `Submit` + `Wait`. Its CPU "+
		"per task counts the three etcd members together, and its etcd writes per Txn the requests all three received. Issue 15's "+
		"goal for it: at least 1.0× JetStream R3's jobs/s and a p50 no higher than R3's.",
		memberClientPort, memberPeerPort, cfg.durableN, cfg.inflight, cfg.latency)
	p("**Durable throughput as done records accumulate** (group growth). Each run: etcd restarted on an empty data dir, a fresh 3-node "+
		"cluster (with --pprof); the durable load of the throughput group (%d tasks, %d in flight, etcd compacted first) with its CPU per "+
		"task (*fresh*); then %d more durable tasks of the demo kind through the same cluster, `client.Load` of at most %d tasks each with "+
		"%d in flight, whose done records etcd keeps for the result retention (10 minutes); then the same durable load again (*later*). "+
		"After each load: the keys under the cluster's prefix (count-only Range) and etcd's db size and db size in use (Status). "+
		"*later ÷ fresh* is the per-run ratio. With -growth-profiles DIR, %s CPU profiles of the master and of etcd "+
		"(--enable-pprof) from the start of each of the two loads are written there.",
		cfg.durableN, cfg.inflight, cfg.growthN, growthChunk, cfg.inflight, profileTime)
	p("**The expiry of done records** (group expiry, issue 15). Each run: etcd restarted on an empty data dir, a fresh 3-node cluster with "+
		"`--result-retention %s`; %d durable tasks of the demo kind in batches (`client.Load`, batches of %d, %d in flight), whose done records "+
		"etcd deletes when their leases expire; etcd's LeaseTimeToLive with keys then counts the leases they are under and the most keys on one. "+
		"From the end of that fill until a retention plus a time bucket (and 1 s) after it, three clients run through the worker: serial 200-byte "+
		"etcd puts, sequential durable `Submit` + `Wait` of one task each, and a background durable `client.Load` (%d in flight). A sample counts "+
		"*before* if it started before the first record could expire (the retention after the first completion), *during* otherwise. "+
		"Then, in the same etcd, the baseline: %d keys of %d bytes put under one lease of 20 s (txns of 128 puts, 8 at once), as one time "+
		"bucket's lease held them before leases were capped, and the same probes from then until the keys are gone. *during ÷ before* is the per-run ratio.",
		cfg.expiryRetention, cfg.expiryN, cfg.batch, cfg.batchInflight, expiryBackground, cfg.expiryN, len(recordValue))
	p("**Task kinds** (one 3-node cluster whose nodes also run `--exec %s=%s`, so every node runs both kinds; the load generator dials a worker). "+
		"Each run, in this order: the Go handler (the demo kind, triple, a Go function that does nothing with `--work-time 0s`): the durable throughput "+
		"load above (%d tasks, %d in flight, etcd compacted first) with its CPU per task, then %d sequential durable `Submit` + `Wait` after 20 "+
		"warm-up tasks; then the same for kind %s (`LoadSpec{Kind: %q}`, no payload) with %d tasks and %d sequential ones, as a process per task "+
		"costs far more. A task that ends in an error (the master's error_results) fails the run. *exec − Go* is the per-run difference, "+
		"so the process's cost per task: fork and exec, the program, its wait and reaping in the worker, and the pipes.",
		nopKind, nopCommand, cfg.durableN, cfg.inflight, cfg.latency, nopKind, nopKind, cfg.execN, cfg.execLatency)
	p("*The earlier report*: the Go handler's medians are divided by those of an earlier report of this bench (-before FILE; by default the " +
		"-out file as it was before the run, that is the last report): its durable throughput, its CPU per durable task of all processes and its " +
		"durable p50. The goal, from issue 12, is that the generality of task kinds costs at most 10 %%. The earlier report is another run on a " +
		"shared machine, so the comparison is only as good as the two runs are alike. For a same-day A/B with the code from before task kinds " +
		"(the new client cannot drive the old nodes, whose decoder refuses the \"v\" key, so the old commit's own bench measures them), run, " +
		"back to back:\n\n" +
		"    git worktree add /tmp/meshpool-old 4143524\n" +
		"    (cd /tmp/meshpool-old && go build -o bin/meshpool ./cmd/meshpool && go run ./bench -only shared -out /tmp/before.md)\n" +
		"    scripts/bench.sh -before /tmp/before.md")
	p("**Fail-over**: a fresh 3-node cluster per run; the master is found with `election.CurrentLeader`, then signalled; a client on another node " +
		"submits every 2 ms (one attempt of at most 10 ms each, so the resolution is 2 to 10 ms) until a submission is accepted with a higher term.")
	p("**One node**: start = exec of a 4th node until its `GET /readyz` answers 200; it is stopped with SIGTERM after each run. Idle RSS = VmRSS "+
		"from /proc/<pid>/status and idle CPU = utime+stime over a %s window as %% of one core; the highest of the 3 nodes of the idle cluster.", cfg.idle)
	p("**Join and leave, 3 nodes**: one 2-node cluster; %d times: exec of a 3rd node on a fresh address until (a) its /status routes name both "+
		"peers, (b) both peers' /status routes name it and (c) the master's /status members list it (polled every 5 ms; a part once seen is not asked "+
		"again); then SIGTERM to it until it is gone from both peers' /status members, and its exit. The progress output gives, per run, when each "+
		"part first held and, for an outlier, which part was last. With %d samples the p99 is the max.", cfg.joinRuns, cfg.joinRuns)
	p("**Scale**, for each size n in %v, on a fresh prefix and fresh addresses:", cfg.scaleSizes)
	p("- *start*: n nodes exec'd at once; every node's /readyz is asked until 200, then its /status until its routes name n−1 peers "+
		"(each node is asked until it got there, then no more; one round over the nodes every 20 ms, so the resolution is a round). "+
		"Done %d times; the last cluster stays for the rest.\n"+
		"- *routes*: each node's /nats/routez, read after the idle windows: `num_routes` counts route connections (nats-server's default pool "+
		"of 3 connections per peer plus one pinned to the system account: 4 per peer when settled), distinct `remote_name`s count peers.\n"+
		"- *etcd requests/s*: the sum over etcd's `grpc_server_msg_received_total` (unary calls plus every message received on a stream: "+
		"lease keep-alives, watch requests) from its /metrics, delta over 3 consecutive %s windows after 2 s of quiet; then at a fixed %d durable "+
		"tasks/s submitted through a worker, 3 windows of %s. The busiest methods are listed under the table.\n"+
		"- *RSS and CPU*: VmRSS of every node and of etcd, utime+stime of every node over the idle windows.\n"+
		"- *join*: %d times, one more node until its /status routes name every node of the cluster and the master's /status members list it "+
		"(a route is one handshake that both ends see, so the peers are not asked); then SIGTERM until it is gone from every other node's members "+
		"(each node asked until it has dropped it).", cfg.scale.starts, cfg.scale.window, cfg.scale.rate, cfg.scale.window*3/4, cfg.scale.joins)
	return b.String()
}
