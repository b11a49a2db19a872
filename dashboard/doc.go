// Package dashboard serves tapline's customer web UI, its JSON API and the
// admin JSON API.
//
// Customers log in as users of an account, with their email (or, for the
// account's first owner, the account's name) and password; a session cookie
// signed with HMAC-SHA256 names a session kept in PostgreSQL. Owners invite
// more users by one-time links and set their roles on the team page;
// viewers may only read, which a middleware on the routers enforces for
// every route that changes something. The UI lists
// the account's apps and shows, per app, daily hits, installs, conversions
// and revenue in a chosen time zone, the per-link totals with their tracking
// URLs, and the SDK credentials. Per app, marketers build funnels (steps,
// window, order, exclusions, breakdown), follow their backfill and read
// their results: step bars, conversion, drop-off, times between steps, the
// breakdown and the days, or a CSV. Every number comes from the hourly fact
// tables through tapline.Reports and tapline.FunnelReports; raw hits and
// events are never read: the app page's raw data download is streamed by
// the export (Dashboard.Download, export.API.Download) once the dashboard
// has checked the owner's session. The SKAdNetwork page counts Apple's postbacks
// from their fact rows (tapline.SKANStore's SKANCounts), labels their
// conversion values with the app's schema, lists the postbacks received
// with their status, and says that those counts and tapline's own
// attribution are not additive.
//
// The admin API, guarded by a bearer token, creates accounts, apps, links
// and funnels. Pages and assets are embedded; the UI loads nothing from elsewhere.
package dashboard
