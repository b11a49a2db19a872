// Package bustest is the conformance suite of tapline.Bus. Every Bus
// implementation runs it from its own tests:
//
//	func TestBus(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) tapline.Bus { return mustOpen(t) })
//	}
//
// Each subtest uses its own topics, named after the test plus a random
// suffix, so one cluster or one store may serve every subtest at once.
package bustest
