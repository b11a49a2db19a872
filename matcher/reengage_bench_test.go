package matcher

import (
	"fmt"
	"testing"
	"time"

	"tapline"
)

// BenchmarkOpens measures processing an open of a known installation: in
// an app without re-engagement links, and in one with them and a tap on
// one for every tenth device (by advertising id).
func BenchmarkOpens(b *testing.B) {
	for _, withLinks := range []bool{false, true} {
		b.Run(fmt.Sprintf("reengagement_links=%t", withLinks), func(b *testing.B) {
			t := &testing.T{}
			h := newHarness(t)
			if withLinks {
				h.reengagementLinks(reengage)
			}
			const devices = 200
			gaid := func(i int) string { return fmt.Sprintf("38400000-8cf0-11bd-b23e-%012d", i+1) }
			for i := range devices {
				ip := fmt.Sprintf("192.0.2.%d", i+1)
				h.install(fmt.Sprintf("e%d", i), t0, ip, android, withGAID(gaid(i)))
				if i%10 == 0 {
					h.hit(fmt.Sprintf("h%d", i), reengage, t0.Add(time.Hour), ip, chromeAndUA, hitAdID(gaid(i)))
				}
			}
			b.ResetTimer()
			for n := range b.N {
				i := n % devices
				e := &tapline.Event{ID: fmt.Sprintf("o%d", n), AppID: appID, Name: "open", Kind: tapline.KindOpen,
					Time: t0.Add(2*time.Hour + time.Duration(n)*time.Millisecond), InstallID: fmt.Sprintf("inst-e%d", i), IP: fmt.Sprintf("192.0.2.%d", i+1)}
				android(e)
				e.Device.GAID = gaid(i)
				h.fp.Event(e)
				if _, _, err := h.m.process(b.Context(), h.msg(tapline.TopicEvents, e, e.Time), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
