package fingerprint_test

import (
	"strings"
	"testing"

	"tapline/fingerprint"
)

// TestBot checks the previewers and crawlers the attribution issue names,
// with User-Agents they send, and people's browsers and in-app browsers,
// which must never be taken for one.
func TestBot(t *testing.T) {
	t.Parallel()
	bots := map[string]string{
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)": "facebookexternalhit",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)":                "slackbot",
		"Twitterbot/1.0":                "twitterbot",
		"WhatsApp/2.23.20.0 A":          "whatsapp",
		"TelegramBot (like TwitterBot)": "telegrambot",
		"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)":                                                                                                         "discordbot",
		"LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)":                                                                                     "linkedinbot",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0":       "facebookexternalhit", // iMessage
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)": "applebot",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)":                                                                                                  "googlebot",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)":                                                                                                   "bingbot",
	}
	for ua, want := range bots {
		if got := fingerprint.Bot(ua); got != want {
			t.Errorf("Bot(%q) = %q, want %q", ua, got, want)
		}
	}
	people := []string{
		"",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.29.109;FBBV/580707050;FBDV/iPhone14,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
		"Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 Instagram 321.0.0.39.106 Android",
		"Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36 Telegram-Android/10.9.1",
	}
	for _, ua := range people {
		if got := fingerprint.Bot(ua); got != "" {
			t.Errorf("Bot(%q) = %q, want a person", ua, got)
		}
	}
}

// TestBotUAPCore checks Bot against uap-core's devices: no phone, tablet
// or desktop browser among them is taken for a bot, and the crawlers the
// list names are caught.
func TestBotUAPCore(t *testing.T) {
	t.Parallel()
	var spiders, caught int
	for _, c := range loadUAPCore(t, "test_device.yaml") {
		got := fingerprint.Bot(c.UserAgent)
		if c.Family == "Spider" {
			spiders++
			if got != "" {
				caught++
			}
			continue
		}
		// WhatsApp's own client ("WhatsApp/2.11 Android/4.2.2
		// Device/samsung-GT-I9502") fetches a link on the sender's phone to
		// draw its preview; a tap opens the phone's browser instead. So
		// uap-core names a device, rightly, and it is still no tap.
		if got != "" && got != "whatsapp" {
			t.Errorf("Bot(%q) = %q, but uap-core's device is %s %s %s", c.UserAgent, got, c.Brand, c.Family, c.Model)
		}
	}
	if spiders == 0 || !strings.Contains(fingerprint.Bot("Googlebot"), "googlebot") {
		t.Fatalf("uap-core lists %d spiders", spiders)
	}
	t.Logf("%d of uap-core's %d spiders are named bots (the list names previewers and the main crawlers only)", caught, spiders)
}
