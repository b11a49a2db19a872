// Package loadgen generates a synthetic, seeded population of phones that
// tap tracking links and install, open and buy in an app, drives a
// tapline collector (or anything serving the same routes) with it over
// HTTP, and knows the ground truth: which tap caused which install.
//
// # Population
//
// Generate builds a Workload from a Config. For one seed it is always the
// same. Devices are iPhones and Android phones with weighted OS-version
// and model distributions. A tap comes from a browser: Safari, Chrome
// (on Android with the reduced "Android 10; K" User-Agent), Samsung
// Internet, or an in-app browser of Facebook or Instagram, whose
// User-Agent carries the model and OS version. Each device has a cellular
// address (an IPv4 address behind carrier-grade NAT shared by a
// heavy-tailed, Zipf-distributed number of devices, or an IPv6 /64 whose
// low 64 bits rotate with every request) and most have a home Wi-Fi
// address shared by the household; a share of devices installs on
// another network than the one they tapped on. The delay from the last
// tap to the install is a mixture of a log-normal (most installs within
// the hour) and an exponential tail over days. Organic installs come from
// devices that never tapped, sharing the same addresses. Installs are
// followed by opens and purchases with revenue. Some taps carry an
// advertising id (an ad network's macro) and Android installs mostly carry
// the Play install referrer.
//
// # Ground truth
//
// Each install's truth is the last tap of its device before it, if that
// tap lies within the click window; otherwise it is organic. Every tap
// carries its number as the query parameter lg_tap, which the collector
// keeps in Hit.Params, so an attribution (a hit id) can be mapped back to
// a tap and scored against the truth with Score. NaiveIP and NaiveIPUA are
// the baselines a user might build instead, run on the same data.
//
// # Time
//
// Actions happen at simulated offsets from the start. The collector stamps
// a hit with its own clock, so the Player replays the timeline in
// compressed real time: an action at simulated offset t is sent at
// start + t/Compression, and every event's created-ms is its real send
// time. Attribution windows must then be divided by the same factor
// (Windows.Scaled) for the app under test, so that a 24-hour fingerprint
// window still spans the same simulated day. With Compression 0 the
// Player sends as fast as it can, in timeline order per device; that mode
// measures throughput, not accuracy.
//
// # Load
//
// Hammer is a closed-loop HTTP load generator: N workers with keep-alive
// connections issue requests back to back for a duration and record every
// latency; Result reports throughput and percentiles.
package loadgen
