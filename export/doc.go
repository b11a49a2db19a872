// Package export streams an app's raw data out of tapline: its
// conversions, from the conversions table, of all time, and its hits and
// events, from the raw store, within their retention. It serves
//
//	GET /api/v1/apps/{id}/export/{conversions|events|hits}?from=&to=&format=csv|ndjson[&cursor=][&limit=]
//
// to an account's API token (Authorization: Bearer tl_…), on the
// dashboard's listener ahead of the dashboard's router (API.Mount): the
// dashboard itself holds no raw store. API.Download streams the same
// export, as one answer of the whole range, for a caller that authorised
// it itself: the dashboard's page route, for a logged-in owner. The export holds its own narrow
// views of the raw store (RawRows), of the conversions table
// (Conversions) and of the accounts (Accounts).
//
// Rows stream in a stable order, a bounded batch at a time, so that no
// export is ever held in memory: conversions newest install first (the
// conversions listing's order), hits and events in the raw store's row
// order (tapline.RowPos: by week and id in the embedded store, by
// partition token and id in Cassandra). Each row's cursor, the position
// after it, is derived from the row alone (Cursor): base64url of its time
// as written (time, or install_time for a conversion), "|" and its id. A
// request with cursor= continues after that row, so a client whose
// connection dropped resumes after the last complete row it received, and
// an export neither repeats nor skips a row.
//
// A response ends cleanly only when it has written every row of the
// export, or limit rows: an NDJSON response then ends with a trailer line,
// {"next_cursor":"…","complete":true|false,"rows":N}, and either format
// with the HTTP trailers X-Next-Cursor, X-Export-Complete and X-Export-Rows.
// Anything else, a failure of a store, the server shutting down, a
// dropped connection, cuts the response short, without its trailer: the
// client resumes after the last complete row. Client does all of that for
// the tapline export command.
//
// Advertising ids never leave: the rows are the domain types' JSON with
// the advertising ids, the vendor id, the full address (masked to its /24
// or /64, as the conversions explorer shows it), the User-Agent, client
// hints and Referer left out (rows.go).
package export
