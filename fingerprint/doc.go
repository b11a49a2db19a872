// Package fingerprint turns a hit's request attributes and an event's SDK
// device fields into the same fingerprint for the same device, so that an
// install without a deterministic signal (advertising id, install
// referrer) can still be joined to the tap that caused it.
//
// # What goes into the fingerprint
//
// A fingerprint may only hold what both a browser tap and the app's SDK
// reliably reveal, or the two sides would never meet. It is the readable
// string "<network>|<platform>", for example "203.0.113.7|ios" or
// "2001:db8:1:2::/64|android":
//
//   - network: the client IP. An IPv4 address is kept whole (IPv4-mapped
//     IPv6 addresses count as IPv4). An IPv6 address is cut to its /64
//     network, because a phone rotates the low 64 bits (privacy
//     extensions) between the browser's request and the app's, while the
//     /64 is the one network its router hands out.
//   - platform: ios, android or web. A hit's platform comes from the
//     User-Agent as parsed by uap-go, or from Sec-CH-UA-Platform when
//     Chromium sends "Android"; an event's comes from the SDK, or from
//     the device model when the SDK left it empty ("iPhone15,2" is ios,
//     any other phone model android).
//
// Nothing else goes in, because current browsers hide it:
//
//   - Chrome on Android (and Samsung Internet since 24) sends the reduced
//     User-Agent "Linux; Android 10; K", and from Android 16 so does the
//     WebView of an in-app browser that keeps its default User-Agent
//     ("Linux; Android 10; K; wv"): the version and the model are fake.
//     The real ones only come as Sec-CH-UA-Platform-Version and
//     Sec-CH-UA-Model when the server asked for them (Accept-CH).
//   - Safari on iOS never names the model, only the class ("iPhone",
//     "iPad"); from Safari 26 it freezes the OS token at 18_6 or 18_7 and
//     only its own Version/26.x tracks the OS. Chrome on iOS (CriOS) and
//     other WebKit views carry no Version token at all.
//   - iPadOS Safari by default sends a Mac User-Agent, so such a tap is a
//     web hit and cannot be told from a Mac (its fingerprint is "…|web" and
//     it does not meet an iPad install).
//   - Sec-CH-UA-Mobile is not used: it tells a phone from a tablet or
//     "desktop site" mode, which no SDK reports.
//   - The device class is not in the key either: an SDK that sends no
//     model would have no class, and its install would never meet the tap.
//
// # Finer attributes: Compatible
//
// What only one kind of hit reveals is kept on the hit (Hit.OSVersion,
// Hit.Model) and checked by Compatible when the matcher weighs candidates
// that share a fingerprint:
//
//   - Model: in-app browsers carry the real one (Facebook's FBDV/iPhone15,2
//     and FBSV/17.4; Instagram's "(iPhone15,2; iOS 17_4; …)"; Android
//     WebViews' "Android 14; Pixel 7 Build/…; wv)"), as does
//     Sec-CH-UA-Model. Safari gives only the class. Android models are
//     compared ignoring case, punctuation and a brand prefix. On Android
//     the model is read as the device writes it, the Build.MODEL the SDK
//     sends too: first from the app's own fields (Facebook's and
//     Messenger's FBDV/FBSV, Instagram's and Threads' "Android (33/13; …;
//     samsung; SM-G991B; …)", Snapchat's "(Pixel 6 Pro; Android 12#…)"),
//     then from the WebView's "<model> Build/", and only without either
//     from uap-go's device catalogue, which renames models ("LG-TP260" to
//     "TP260") and costs ten times more. TikTok, LINE, WeChat, X, Pinterest,
//     LinkedIn and the Google app add only a name to the WebView's
//     User-Agent on Android and reveal no model on iOS, where only
//     Facebook (FBDV; not its newer "MetaIAB" token) and Instagram do.
//     Gmail opens links in Chrome Custom Tabs: Chrome's reduced
//     User-Agent, with the model only in the client hints.
//   - OS version: kept only where it is real (not Chrome's reduced
//     "Android 10", not Safari 26's frozen 18_6). The majors must match;
//     the event's version may be higher (an update between tap and
//     install) but not lower, compared at the precision both sides give
//     ("17.4" agrees with "17.4.1").
//
// An attribute either side hides agrees with anything. The fingerprint of a
// hit or event without a parsable IP, or of an event whose platform is
// unknown, is "": it is only matched by deterministic signals.
//
// # Scores: Decide
//
// Compatible only rules candidates out. Among the compatible taps on an
// install's network in the fingerprint window, Decide chooses by evidence
// and says how sure the choice is. A candidate's evidence (Evidence) is
// the sum of log-likelihood ratios, each how much more likely the pair of
// values is when tap and install are one device than two unrelated
// devices on the network:
//
//   - model: the log of one over the model's share among the app's
//     installs (an agreeing Apple class alone weighs nothing);
//   - OS version: the same, at the precision both sides give, less when
//     the install's version is newer (an update in between);
//   - language: the browser's first Accept-Language against the SDK's
//     locale, weighed like the model when they agree, −2 when the
//     languages differ;
//   - click-to-install time: its density among the app's installs taps
//     caused, against the uniform density of a coincidence in the window.
//
// The shares and the delays are learned per app (Population) from the
// installs the matcher sees and from its deterministic matches, whose
// taps are known, starting from priors (see the Weight constants and
// Delays). Taps with the same User-Agent, language and model count as one
// device, by its newest tap. The decision score is then the log-odds that
// the best candidate caused the install rather than another device's tap
// or an organic install from the network:
//
//	score = evidence(best) − ln(devices + Σ_rivals e^evidence(rival))
//
// where devices is the number of distinct tapping devices on the network
// in the window (a carrier NAT address with 400 of them says little, a
// home address with one says much). The matcher credits the best only from
// the app's fingerprint_min_score (tapline.DefaultFingerprintMinScore
// unless set), otherwise the install is organic
// (tapline.RuleBelowMinScore), and records the score, each signal's weight
// and each candidate's evidence on the decision.
//
// # Caveats
//
// Devices behind one address (a household, a carrier's NAT) share a
// fingerprint; Compatible and the attribution window narrow them down but
// cannot always tell them apart. A device that taps over IPv6 and opens the
// app over IPv4 (or the other way) gets two fingerprints; serve hits and
// SDK events from hosts with the same address families.
//
// Parsing a User-Agent runs hundreds of regular expressions, so a
// Fingerprinter caches parse results in a bounded LRU and parses at most
// the first MaxUserAgent bytes of a header.
package fingerprint
