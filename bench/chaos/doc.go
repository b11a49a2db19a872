// Package chaos is tapline's fault harness: it runs the real binaries as
// child processes on loopback, drives them with loadgen's devices and
// taps, injects faults on a seeded schedule, and at the end compares every
// fact table and every stored conversion with what the processes
// acknowledged. bench/cmd/chaos is its command (`make chaos`);
// TestCampaignShort runs its 60-second version inside `make test`.
//
// # Topology
//
// Two deployments run side by side, each with a database of its own in a
// PostgreSQL cluster the harness creates for itself (initdb into a new
// directory, the postmaster on a free port as a child process, as the
// postgres user when the harness is root), so that stopping or killing it
// touches no other test:
//
//   - "kafka": two cmd/collector processes and one cmd/matcher on a
//     Kafka-protocol broker in a process of its own, bench/cmd/kfakebroker
//     (franz-go's kfake on one port). With -cassandra-hosts the raw store
//     is Cassandra and two matchers share the partitions; without it the
//     matcher's raw store is embedded in its data directory, which one
//     process can use.
//   - "all-in-one": cmd/tapline run on the embedded bus and raw store, its
//     data directory on a tmpfs the harness mounts (root only) so that the
//     disk can be filled.
//
// The cluster runs with fsync off: a SIGKILL of the postmaster leaves what
// the kernel holds, and crash recovery from there is the fault (a power
// cut is not one of the campaign's).
//
// # What is offered and what must be counted
//
// An installation is one unit of SDK events: its install, one to five
// opens and, for three in ten, a purchase in USD, EUR or GBP. Its device
// (model, OS, locale, address) comes from a loadgen population; its
// install id and advertising id are its own, so that no installation is a
// reinstall of another. 95% of the installations post their events as
// one JSON batch (POST /v1/events), 5% as Tapstream form posts, one per
// event. Workers offer installations at a steady rate (Events spread over
// Duration) to the topology's collectors and keep offering while faults
// are still being injected.
//
// An event is acknowledged when its request was answered 2xx (and, in a
// JSON batch, its result is "accepted"). Like an SDK, the harness resends
// every event not acknowledged, with the same id and the same time, to
// the next collector, with a backoff, until it is; only the hard deadline
// (Duration plus Drain) ends that. The truth is then built from the
// acknowledged events alone: per UTC day and event name the fact_events
// count, per day the fact_installs count, per currency the fact_revenue
// purchases and micros; each install has exactly one row in conversions
// (count and distinct install ids), and fact_reinstalls stays empty. Any
// difference, an event offered and never acknowledged, or one rejected,
// fails the campaign.
//
// Taps go at a steady rate (TapRate per topology) to the collectors in
// turn, each with a number of its own (lg_tap) and never retried: a
// person does not tap twice. A redirect never waits on storage, so a
// collector killed with SIGKILL loses the hits still in its memory. Just
// before each kill the harness scrapes the collector's /metrics: the
// redirects it answered in that incarnation minus the hits it had
// published or dropped bound what the kill can lose (the kill-loss bound).
// At the end, with dropped the tapline_collector_hits_dropped_total of
// every incarnation, redirected - counted - dropped (the unexplained
// remainder) must lie between minus the failed taps (a tap whose answer
// the client lost may still have been counted) and the kill-loss bound,
// which is 0 for a topology none of whose collectors was killed; and no
// more hits may be counted than were offered. After the facts have caught
// up, the harness stops the processes that own an embedded raw store (the
// Kafka topology's matcher, the all-in-one) and reads every hit row of it
// with pebble.RawStore.ScanHitRows: the rows, their distinct hit ids and
// their distinct tap numbers (lg_tap) must all be equal, and fact_hits
// must count exactly that many hits, so that no hit is counted twice. With
// -cassandra-hosts the Kafka topology's store is not read.
//
// # Faults
//
// The schedule is shuffled from -seed and the faults run one after the
// other with a pause between, under load. The default campaign injects 21:
//
//   - kill -9 of the matcher, of a collector and of the all-in-one, three
//     of each (the matcher and the all-in-one flush several times a
//     second, so the kill lands mid-flush), each started again at once.
//   - The broker down for -outage (60 s): SIGKILL, then a start on the same
//     port and data directory. The collectors spool; the row shows the
//     spool's peak depth (tapline_collector_spooled_messages, scraped each
//     second), the events acknowledged and the redirects answered during
//     the outage, and how long the spools took to drain after. A second
//     broker fault kills it and starts it at once.
//   - PostgreSQL stopped (fast shutdown) for -outage, and its postmaster
//     killed with SIGKILL (twice; down a few seconds, then crash
//     recovery): every process must live through it, and the collectors
//     keep answering redirects and events meanwhile.
//   - A collector and the matcher started while PostgreSQL is down: the
//     harness stops the Kafka topology's second collector (SIGTERM, so it
//     writes its snapshot of links and apps) and the matcher, stops
//     PostgreSQL, and starts both for half the outage (5 to 20 s). The
//     collector must answer SDK events 2xx and taps 302 from its snapshot
//     (the row counts both at that collector alone), the matcher must stay
//     up with /livez answering 200, and once PostgreSQL is back fact_events
//     must grow again (the row shows how soon).
//   - Disk full: the all-in-one runs with -min-free-disk-mb 256 (128 in the
//     short campaign); a ballast file (fallocate) fills its tmpfs until
//     half that is free, for half the outage, and is deleted. While full,
//     SDK requests must be answered 503 with Retry-After and nothing else
//     (the row shows how many, and the growth of
//     tapline_collector_storage_full_total), every tap redirected, the
//     process alive; after, events must be acknowledged again, and the
//     totals want every acknowledged event counted.
//   - Overload: a short closed-loop measure of a collector's redirect
//     capacity (as the bench measures it), then loadgen.OpenLoop offers
//     five times that for -overload (30 s): a tap falls due every 1/rate
//     seconds and is sent whatever is still waiting, up to
//     -overload-in-flight (12,000) requests in flight; one due past that
//     is counted as not sent. The row shows attempted, sent, answered and
//     redirected rates, the p99, the processes' peak RSS (VmHWM) and the
//     collector's go_goroutines before and, once idle, after. Past its
//     capacity the collector cannot answer everything an open loop offers
//     (answers wait, and time out after the client's 10 s); the checks
//     are that it redirects at a quarter of its measured capacity or
//     more, answers /healthz 200 after, and has at most 20 more
//     goroutines once idle. Meanwhile the other collector gets 40 slowloris connections
//     (internal/faults.SlowHeaders: a header byte a second) and 40
//     slow-body posts (faults.SlowBody: a form byte a second); every
//     process runs with -http-read-header-timeout 3s and
//     -http-read-timeout 6s, and each slow connection must be cut within
//     a second before and 5 s after its timeout.
//   - Device clocks 3 hours ahead and 3 hours behind for a while: the
//     events must be acknowledged and counted like the others (the
//     collector replaces a time more than an hour ahead with the time it
//     received the event; the day is the same unless the campaign runs
//     across midnight UTC).
//   - The matcher's clock 5 minutes ahead, then 5 minutes behind: it is
//     restarted with -clock-offset 5m (-5m) for a quarter of the outage (at
//     least 3 s), must stay up and count events meanwhile, and the totals
//     want the counts exact.
//
// The short campaign does each kind once (the device and matcher clocks
// once each way), with 5-second outages and a 5-second overload.
//
// # The broker's state
//
// kfakebroker keeps its log segments, topics and group offsets in its
// -data-dir, written through the page cache as Kafka does; SIGKILL loses
// nothing the kernel holds, so a restart serves the same topics and
// offsets, like a real broker restarting on its disk. The matcher's
// offsets that count are stored with the facts in PostgreSQL, so it
// resumes exactly where its last flush left. Started without -data-dir,
// kfake is memory only and a restart is an empty broker: topics created
// anew, offsets from 0 again, below the ones the matcher stored with its
// facts. The broker-wipe fault does that (kill, delete the data
// directory, start), only with -only broker-wipe; its row passes when the
// matchers' /metrics show offset resets
// (tapline_matcher_offset_resets_total) within 30 seconds. The final
// counts still fall short: messages the old broker acknowledged and the
// matcher had not consumed are gone with its log (docs/kafka.md, "A wiped
// or truncated log").
//
// # Output
//
// Run prints the fault table (fault, target, when, for how long, OK,
// what it showed), the totals per topology (events offered, acknowledged,
// rejected, counted, resends; installs and conversions; hits offered,
// redirected, counted, dropped-and-counted, the kill-loss bound and the
// unexplained remainder), the peak RSS of each process and VERDICT PASS or
// FAIL. A fault row that is not OK fails the campaign too; only a fault
// that could not be injected here (disk full without root) is marked known
// and left out of the verdict. Result.WriteJSON saves it all.
package chaos
