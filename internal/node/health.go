package node

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"tapline"
	"tapline/internal/health"
)

// postgresCheck pings PostgreSQL, through whichever pool n.DB is when the
// check runs.
func (n *Node) postgresCheck() health.Check {
	return health.Ping("postgres", func(ctx context.Context) error { return n.DB.Ping(ctx) })
}

// readiness is the /healthz of the operator's listener: the matcher's
// checks in a process that runs one, else the dashboard's, else the
// collector's probe, the same the public listener answers.
func (n *Node) readiness() http.Handler {
	logger := n.Logger.With("component", "health")
	switch {
	case n.Matcher != nil:
		return &health.Checker{Checks: n.matcherChecks(), Logger: logger}
	case n.Dashboard != nil:
		return &health.Checker{Checks: n.Dashboard.Health, Logger: logger}
	default:
		return n.Collector.HealthHandler()
	}
}

// matcherChecks are the readiness checks of a process that runs a matcher:
// PostgreSQL answers a ping; the bus answers (Kafka: the partitions'
// leaders report the topics' end offsets; embedded: it is open); the
// consumer group is at most HealthMaxLag messages behind.
func (n *Node) matcherChecks() []health.Check {
	return []health.Check{n.postgresCheck(), n.busCheck(), n.lagCheck(true)}
}

// busCheck reads the end offsets of the matcher's topics.
func (n *Node) busCheck() health.Check {
	return health.Check{Name: "bus", Run: func(ctx context.Context) (string, error) {
		ends, ok := n.Bus.(tapline.EndOffsetReader)
		if !ok {
			return "", fmt.Errorf("bus %T cannot tell its end offsets", n.Bus)
		}
		var parts []string
		for _, topic := range []string{n.Config.HitsTopic, n.Config.EventsTopic} {
			es, err := ends.EndOffsets(ctx, topic)
			if err != nil {
				return "", err
			}
			parts = append(parts, fmt.Sprintf("%s: %d partitions", topic, len(es)))
		}
		return strings.Join(parts, ", "), nil
	}}
}

// lagCheck fails when the consumer lag, summed over the partitions, is
// over HealthMaxLag, or, with behind, when this process's matcher has had
// a message waiting for longer than HealthMaxBehind (matcher.Matcher.Behind).
// The all-in-one's public dashboard probe leaves the wait out: a matcher
// catching up after an outage is no reason to take the dashboard out of
// rotation.
func (n *Node) lagCheck(behind bool) health.Check {
	return health.Check{Name: "lag", Run: func(ctx context.Context) (string, error) {
		lags, err := n.Matcher.Lag(ctx)
		if err != nil {
			return "", err
		}
		var total int64
		for _, l := range lags {
			total += l.Lag
		}
		maxBehind := n.Config.HealthMaxBehind
		if !behind {
			maxBehind = math.MaxInt64
		}
		wait, at := n.Matcher.Behind()
		return lagVerdict(total, wait, at, n.Config.HealthMaxLag, maxBehind)
	}}
}

// lagVerdict is the lag check's value and verdict: total messages behind
// of the group, and behind, the wait of this matcher's oldest waiting
// message, in partition at.
func lagVerdict(total int64, behind time.Duration, at tapline.Partition, maxLag int64, maxBehind time.Duration) (string, error) {
	value := fmt.Sprintf("%d messages", total)
	if behind > 0 {
		value += fmt.Sprintf(", %s behind", behind.Round(time.Second))
	}
	if total > maxLag {
		return value, tapline.Errorf(tapline.EUNAVAILABLE, "The consumer group is %d messages behind, over -health-max-lag %d.", total, maxLag)
	}
	if behind > maxBehind {
		return value, tapline.Errorf(tapline.EUNAVAILABLE, "A message of %s partition %d has waited %s, over -health-max-behind %s.",
			at.Topic, at.Partition, behind.Round(time.Second), maxBehind)
	}
	return value, nil
}
