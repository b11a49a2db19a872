package node

import (
	"context"
	"fmt"
	"strings"

	"tapline"
	"tapline/internal/health"
)

// postgresCheck pings PostgreSQL, through whichever pool n.DB is when the
// check runs.
func (n *Node) postgresCheck() health.Check {
	return health.Ping("postgres", func(ctx context.Context) error { return n.DB.Ping(ctx) })
}

// matcherChecks are the readiness checks of a process that runs a matcher:
// PostgreSQL answers a ping; the bus answers (Kafka: the partitions'
// leaders report the topics' end offsets; embedded: it is open); the
// consumer group is at most HealthMaxLag messages behind.
func (n *Node) matcherChecks() []health.Check {
	return []health.Check{n.postgresCheck(), n.busCheck(), n.lagCheck()}
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
// over HealthMaxLag.
func (n *Node) lagCheck() health.Check {
	return health.Check{Name: "lag", Run: func(ctx context.Context) (string, error) {
		lags, err := n.Matcher.Lag(ctx)
		if err != nil {
			return "", err
		}
		var total int64
		for _, l := range lags {
			total += l.Lag
		}
		value := fmt.Sprintf("%d messages", total)
		if total > n.Config.HealthMaxLag {
			return value, tapline.Errorf(tapline.EUNAVAILABLE, "The consumer group is %d messages behind, over -health-max-lag %d.", total, n.Config.HealthMaxLag)
		}
		return value, nil
	}}
}
