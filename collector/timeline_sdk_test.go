package collector_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapline/collector"
)

// sdkParserFiles are the Android SDK's sources that its timeline parsers
// need, under tapstream-core/src/main/java/com/tapstream/sdk/.
var sdkParserFiles = []string{
	"TimelineSummaryResponse.java", "TimelineApiResponse.java", "ApiResponse.java", "Logging.java",
	"http/HttpResponse.java", "errors/ApiException.java", "errors/RecoverableApiException.java",
	"errors/UnrecoverableApiException.java",
}

// sdkParser compiles the Tapstream Android SDK's timeline parsers with
// testdata/sdkparse/SdkParse.java and returns a function running them on
// (mode, body) pairs. It skips the test unless TAPLINE_TAPSTREAM_SDK_ANDROID
// names a checkout of github.com/tapstream/tapstream-sdk-android, javac
// and java are installed, and an org.json jar is at TAPLINE_ORG_JSON_JAR
// or /usr/share/java/com.android.json.jar (Debian's libandroid-json-java:
// Android's own org.json, the one the SDK parses with on a phone). The
// SDK is compiled against compile-only stand-ins of the org.json calls it
// makes (testdata/sdkparse/compileonly) and run against that jar.
func sdkParser(t *testing.T) func(pairs ...string) []map[string]any {
	t.Helper()
	sdk := os.Getenv("TAPLINE_TAPSTREAM_SDK_ANDROID")
	if sdk == "" {
		t.Skip("TAPLINE_TAPSTREAM_SDK_ANDROID does not name a checkout of tapstream-sdk-android")
	}
	jar := os.Getenv("TAPLINE_ORG_JSON_JAR")
	if jar == "" {
		jar = "/usr/share/java/com.android.json.jar"
	}
	if _, err := os.Stat(jar); err != nil {
		t.Skipf("no org.json jar (TAPLINE_ORG_JSON_JAR): %v", err)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skip("javac is not installed")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java is not installed")
	}
	src := filepath.Join(sdk, "tapstream-core/src/main/java/com/tapstream/sdk")
	harness, err := filepath.Abs("testdata/sdkparse/SdkParse.java")
	if err != nil {
		t.Fatal(err)
	}
	stubs, err := filepath.Glob("testdata/sdkparse/compileonly/org/json/*.java")
	if err != nil || len(stubs) == 0 {
		t.Fatalf("compile-only org.json stand-ins: %v", err)
	}
	// Compiled against the stand-ins, run against the real org.json jar.
	stubClasses, classes := t.TempDir(), t.TempDir()
	if out, err := exec.Command(javac, append([]string{"-nowarn", "-d", stubClasses}, stubs...)...).CombinedOutput(); err != nil {
		t.Fatalf("compile the org.json stand-ins: %v\n%s", err, out)
	}
	args := []string{"-nowarn", "-cp", stubClasses, "-d", classes, harness}
	for _, f := range sdkParserFiles {
		args = append(args, filepath.Join(src, f))
	}
	if out, err := exec.Command(javac, args...).CombinedOutput(); err != nil {
		t.Fatalf("compile the SDK's parsers: %v\n%s", err, out)
	}
	return func(pairs ...string) []map[string]any {
		t.Helper()
		dir := t.TempDir()
		jargs := []string{"-cp", classes + string(os.PathListSeparator) + jar, "com.tapstream.sdk.SdkParse"}
		for i := 0; i+1 < len(pairs); i += 2 {
			f := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(f, []byte(pairs[i+1]), 0o600); err != nil {
				t.Fatal(err)
			}
			jargs = append(jargs, pairs[i], f)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(java, jargs...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run the SDK's parsers: %v\n%s", err, stderr.String())
		}
		var res []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
				continue // the SDK's own log (Logging prints to standard output)
			}
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("SdkParse printed %q: %v", sc.Text(), err)
			}
			res = append(res, m)
		}
		if len(res) != len(pairs)/2 {
			t.Fatalf("SdkParse answered %d of %d bodies:\n%s", len(res), len(pairs)/2, out)
		}
		return res
	}
}

// TestTimelineSDKParsers runs the Android SDK's own TimelineSummaryResponse
// and TimelineApiResponse on the collector's answers for an attributed
// install with a deep link, an organic install and an unknown session.
func TestTimelineSDKParsers(t *testing.T) {
	t.Parallel()
	parse := sdkParser(t)
	e := newTimelineEnv(t, collector.Config{TimelineWait: 1500 * time.Millisecond})
	e.link.DeepLink = "demoapp://promo/spring"
	if err := e.accounts.UpdateLink(t.Context(), e.link); err != nil {
		t.Fatal(err)
	}
	const idfa = "0B7D2C1E-5A4F-4E3D-9C8B-7A6F5E4D3C2B"
	hitID := e.tapIPhone(t, idfa, "utm_campaign=spring")
	e.install(t, "attributed-1", idfa, url.Values{"custom-level": {"1"}})
	e.install(t, "organic-1", "", url.Values{"custom-plan": {"free"}})

	var pairs []string
	for _, s := range []string{"attributed-1", "organic-1", "unknown-1"} {
		for _, kind := range []string{"summary", "lookup"} {
			code, body := e.get(timelineURL(kind, demoSecret, s, true))
			if code != http.StatusOK {
				t.Fatalf("%s %s: %d %s", kind, s, code, body)
			}
			pairs = append(pairs, kind, body)
		}
	}
	got := parse(pairs...)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	attrSum, attrLook := got[0], got[1]
	if attrSum["empty"] != false || attrSum["latest_deeplink"] != "demoapp://promo/spring" ||
		js(attrSum["deeplinks"]) != `["demoapp://promo/spring"]` || js(attrSum["campaigns"]) != `["demo"]` ||
		js(attrSum["hit_params"]) != `{"utm_campaign":"spring"}` || js(attrSum["event_params"]) != `{"level":"1"}` ||
		attrSum["latest_deeplink_timestamp"].(float64) <= 0 {
		t.Errorf("the SDK reads the attributed summary %s as %s", pairs[1], js(attrSum))
	}
	hits := fmt.Sprint(attrLook["timeline"])
	if attrLook["empty"] != false || !strings.Contains(hits, hitID) || !strings.Contains(hits, "demoapp://promo/spring") {
		t.Errorf("the SDK reads the attributed lookup %s as %s", pairs[3], js(attrLook))
	}

	orgSum, orgLook := got[2], got[3]
	if orgSum["empty"] != false || orgSum["latest_deeplink"] != "" || orgSum["latest_deeplink_timestamp"] != -1.0 ||
		js(orgSum["campaigns"]) != `[]` || js(orgSum["event_params"]) != `{"plan":"free"}` {
		t.Errorf("the SDK reads the organic summary %s as %s", pairs[5], js(orgSum))
	}
	if tl, _ := orgLook["timeline"].(map[string]any); orgLook["empty"] != false || js(tl["hits"]) != `[]` {
		t.Errorf("the SDK reads the organic lookup %s as %s", pairs[7], js(orgLook))
	}

	noSum, noLook := got[4], got[5]
	if noSum["empty"] != true || noSum["latest_deeplink"] != nil || noLook["empty"] != true || noLook["timeline"] != nil {
		t.Errorf("the SDK reads nothing found (%s, %s) as %s, %s", pairs[9], pairs[11], js(noSum), js(noLook))
	}
}
