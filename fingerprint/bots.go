package fingerprint

import "strings"

// botTokens are substrings of the User-Agents of link previewers and
// crawlers, lower-cased, each with the name a bot hit is counted under.
// The list is explicit: a bare "bot" would also match phones (a CUBOT
// handset's User-Agent names its model), and a tap from a phone must never
// be lost.
var botTokens = []struct{ token, name string }{
	// Link previews in messengers and social apps. iMessage's previewer
	// sends a Safari User-Agent with "facebookexternalhit" and "Twitterbot"
	// appended.
	{"facebookexternalhit", "facebookexternalhit"},
	{"facebookcatalog", "facebookcatalog"},
	{"facebot", "facebot"},
	{"meta-externalagent", "meta-externalagent"},
	{"slackbot", "slackbot"},
	{"slack-imgproxy", "slackbot"},
	{"telegrambot", "telegrambot"}, // "TelegramBot (like TwitterBot)"
	{"twitterbot", "twitterbot"},
	{"whatsapp/", "whatsapp"},
	{"discordbot", "discordbot"},
	{"linkedinbot", "linkedinbot"},
	{"pinterestbot", "pinterestbot"},
	{"redditbot", "redditbot"},
	{"skypeuripreview", "skypeuripreview"},
	{"microsoftpreview", "microsoftpreview"},
	{"vkshare", "vkshare"},
	{"snapchat-link-preview", "snapchat"},
	{"embedly", "embedly"},
	{"iframely", "iframely"},
	{"mastodon/", "mastodon"},
	{"google-pagerenderer", "google-pagerenderer"},
	{"googleimageproxy", "googleimageproxy"},
	{"yahoomailproxy", "yahoomailproxy"},
	{"kakaotalk-scrap", "kakaotalk-scrap"},
	{"google-safety", "google-safety"},
	// Search and other crawlers.
	{"applebot", "applebot"},
	{"googlebot", "googlebot"},
	{"google-inspectiontool", "googlebot"},
	{"adsbot-google", "adsbot-google"},
	{"mediapartners-google", "adsbot-google"},
	{"storebot-google", "googlebot"},
	{"bingbot", "bingbot"},
	{"bingpreview", "bingbot"},
	{"yandexbot", "yandexbot"},
	{"duckduckbot", "duckduckbot"},
	{"baiduspider", "baiduspider"},
	{"petalbot", "petalbot"},
	{"ahrefsbot", "ahrefsbot"},
	{"semrushbot", "semrushbot"},
	{"mj12bot", "mj12bot"},
	{"dotbot", "dotbot"},
	{"bytespider", "bytespider"},
	{"gptbot", "gptbot"},
	{"ccbot", "ccbot"},
	{"amazonbot", "amazonbot"},
	{"claudebot", "claudebot"},
}

// Bot returns the name of the link previewer or crawler whose User-Agent
// userAgent is, or "" for anything else (a person's browser or app). A
// hit from one still gets its redirect but is no tap: it is counted apart
// and never credited with an install.
func Bot(userAgent string) string {
	if userAgent == "" {
		return ""
	}
	ua := strings.ToLower(userAgent)
	for _, b := range botTokens {
		if strings.Contains(ua, b.token) {
			return b.name
		}
	}
	return ""
}
