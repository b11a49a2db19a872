package kafka

import (
	"slices"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

func TestCopartitionedAssignment(t *testing.T) {
	topics := []string{"hits", "events"}
	members := []kafkago.GroupMember{{ID: "m-c", Topics: topics}, {ID: "m-a", Topics: topics}, {ID: "m-b", Topics: topics}}
	// Metadata order differs between the topics, as brokers may send it.
	var parts []kafkago.Partition
	for _, id := range []int{5, 0, 7, 2, 1, 6, 3, 4} {
		parts = append(parts, kafkago.Partition{Topic: "hits", ID: id})
	}
	for _, id := range []int{3, 6, 0, 1, 7, 4, 2, 5} {
		parts = append(parts, kafkago.Partition{Topic: "events", ID: id})
	}
	got := copartitioned{}.AssignGroups(members, parts)
	seen := map[string]int{}
	for _, m := range members {
		hits, events := got[m.ID]["hits"], got[m.ID]["events"]
		if !slices.Equal(hits, events) {
			t.Errorf("member %s: hits %v, events %v; want the same partition numbers", m.ID, hits, events)
		}
		if len(hits) < 2 || len(hits) > 3 {
			t.Errorf("member %s owns %d partitions per topic, want 2 or 3", m.ID, len(hits))
		}
		seen["hits"] += len(hits)
		seen["events"] += len(events)
	}
	if seen["hits"] != 8 || seen["events"] != 8 {
		t.Fatalf("assigned %v partitions, want 8 of each topic exactly once", seen)
	}
	if a := got["m-a"]["hits"]; !slices.Equal(a, []int{0, 1}) {
		t.Errorf("the first member by id owns %v, want [0 1]", a)
	}
}
