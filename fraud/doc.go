// Package fraud holds tapline's fraud rules: checks on the tap an install
// is about to be credited to, each giving a tapline.FraudFinding with the
// action the app's tapline.FraudPolicy takes.
//
//   - click injection: the install's first open came sooner after the tap
//     than the policy's minimum click-to-install time;
//   - click flooding: the tap's source (its /24 or /64 network, or the
//     value of a sub-publisher parameter such as sub_publisher, site_id or
//     pub_id) sent many taps in the app's fingerprint window and few of
//     them were credited with an install (Flood counts both online, in
//     bounded memory);
//   - datacenter: the tap came from a hosting or cloud provider's address
//     range (Ranges, loaded once from datacenters.txt or a refreshed list);
//   - tap after install: the tap is stamped after the install's first open.
//
// The matcher calls Checker.Check where it decides an attribution; Reject
// turns a decision into the organic one a rejecting rule makes.
// docs/fraud.md describes the rules for users.
package fraud
