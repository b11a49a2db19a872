// Package collector is tapline's HTTP edge. It answers tracking-link taps
// (GET /l/{slug}) with a redirect to the store for the visitor's platform,
// serves hit pixels, and takes app events from the published Tapstream SDKs
// (POST /{account}/event/{name}) and from the JSON batch API
// (POST /v1/events). Hits and events become tapline.Hit and tapline.Event
// values produced to the bus, keyed by fingerprint.
//
// Redirects never wait on storage or the bus: links come from an in-memory
// cache and hits go through a bounded in-memory queue that a publisher
// goroutine drains to the bus; when the queue is full a hit is dropped and
// counted. SDK events are answered 200 only once the bus has them.
//
// SKAdNetwork and AdAttributionKit postbacks (Apple's copies to the
// developer at /.well-known/skadnetwork/report-attribution/ and
// /.well-known/appattribution/report-attribution/, and what ad networks
// forward to POST /v1/skadnetwork/postbacks) are the one path that waits on
// storage: each is checked against Apple's keys (package skadnetwork) and
// written to PostgreSQL with its fact row in one transaction
// (tapline.SKANStore), and answered 503 when that fails, for Apple and the
// networks retry until they get a 200. They are few; taps never wait.
// Anyone can post to these routes, so postbacks whose signature fails, and
// refused ones, are limited per address (429 with Retry-After past
// Config.SKANRate and SKANBurst; a postback Apple signed is never refused
// by the limit), and an app keeps a bounded number of rejected postbacks a
// day (tapline.ErrSKANRejectedFull).
package collector
