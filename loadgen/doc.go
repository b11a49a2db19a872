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
// (on Android with the reduced "Android 10; K" User-Agent, sending its
// model and OS version as client hints when the redirect asks for them:
// the Player repeats such a tap with them, as Chromium does on
// Critical-CH), Samsung Internet, or an in-app browser of Facebook or
// Instagram, whose User-Agent carries the model and OS version. Its
// Accept-Language is the phone's locale, except for a few taps. Each
// device has a cellular address (an IPv4 address behind carrier-grade NAT
// shared by a heavy-tailed, Zipf-distributed number of devices, or an IPv6
// /64 whose low 64 bits rotate with every request) and most have a home
// Wi-Fi address shared by the household; a share of devices installs on
// another network than the one they tapped on. Installs are followed by
// opens and purchases with revenue. Some taps carry an advertising id (an
// ad network's macro) and Android installs after a tap mostly carry the
// Play install referrer.
//
// NewConfig gives the default population; NewHardConfig a second one the
// defaults are not tuned to: more in-app browsers, carrier NAT addresses
// three times as crowded, more installs days after the tap, fewer
// referrers and advertising ids, more organic devices.
//
// # Ground truth: what caused each install
//
// The truth is the generator's own causal model, not an attribution rule:
//
//   - A tapping device taps one to four times, hours apart. With
//     InstallRate its taps bring it to install: it installs after its
//     last tap (the one that opened the store page) with a delay from a
//     log-normal of minutes or, for DelayedShare of them, an exponential
//     tail of days. That tap is the install's cause, however long the
//     delay: installs later than any attribution window are tap-driven
//     installs no window can credit (Accuracy.Unreachable).
//   - A tapping device its taps did not bring to install may still
//     install later of its own accord (LaterOrganicShare): organic,
//     though a tap of its own precedes it.
//   - Organic devices never tap this app's links; OtherTapShare of them
//     tap another app's link (OtherLinks) before installing: organic.
//   - All of them share carrier NAT and household addresses.
//
// Every tap carries its number as the query parameter lg_tap, which the
// collector keeps in Hit.Params, so an attribution (a hit id) can be
// mapped back to a tap and scored against the truth with Score.
//
// # Scores
//
// Score reports precision (right credits over all credits), recall (right
// credits over tap-driven installs) and organic misattribution (organic
// installs credited to a tap), then per match method (the precision of
// the referrer's, the advertising id's and the fingerprint's credits), per
// signal class (Classify: whether the install's referrer names its cause,
// its cause carries the advertising id, or neither, and the recall of
// each), and over the fingerprint-only installs: those no referrer or
// advertising id points at a tap, tap-driven and organic, where only
// fingerprinting can decide. Curve re-scores at other fingerprint
// thresholds from the best candidate and score each answer records.
// NaiveIP and NaiveIPUA are the baselines a user might build instead:
// the same deterministic rules as tapline (Deterministic), then the newest
// tap from the same address (and User-Agent), so that the fingerprint
// comparison is like for like.
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
