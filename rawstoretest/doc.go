// Package rawstoretest is the conformance suite of tapline.RawStore. Every
// RawStore implementation runs it from its own tests:
//
//	func TestRawStore(t *testing.T) {
//		rawstoretest.Run(t, func(t *testing.T) tapline.RawStore { return mustOpen(t) })
//	}
//
// Each subtest runs in parallel on its own store and uses random app ids, so
// implementations that share one database between subtests work too.
package rawstoretest
