// SdkParse runs the Tapstream Android SDK's own timeline parsers on
// answers of tapline's collector (TestTimelineSDKParsers). It is compiled
// with the SDK's sources, which the test takes from a checkout of
// tapstream-sdk-android named by TAPLINE_TAPSTREAM_SDK_ANDROID; no SDK
// code is kept here. It lives in the SDK's package because
// TimelineSummaryResponse.createSummaryResponse is package-private.
//
// Usage: java com.tapstream.sdk.SdkParse MODE FILE [MODE FILE ...], MODE
// "lookup" or "summary"; one JSON line per pair on standard output.
package com.tapstream.sdk;

import com.tapstream.sdk.http.HttpResponse;

import org.json.JSONArray;
import org.json.JSONObject;

import java.nio.file.Files;
import java.nio.file.Paths;

public class SdkParse {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            byte[] body = Files.readAllBytes(Paths.get(args[i + 1]));
            HttpResponse resp = new HttpResponse(200, "OK", body);
            JSONObject out = new JSONObject();
            if (args[i].equals("summary")) {
                TimelineSummaryResponse s = TimelineSummaryResponse.createSummaryResponse(resp);
                out.put("empty", (Object) Boolean.valueOf(s.isEmpty()));
                out.put("latest_deeplink", s.getLatestDeeplink() == null ? JSONObject.NULL : (Object) s.getLatestDeeplink());
                out.put("latest_deeplink_timestamp", (Object) s.getLatestDeeplinkTimestamp());
                out.put("deeplinks", s.getDeeplinks() == null ? JSONObject.NULL : new JSONArray(s.getDeeplinks()));
                out.put("campaigns", s.getCampaigns() == null ? JSONObject.NULL : new JSONArray(s.getCampaigns()));
                out.put("hit_params", s.getHitParams() == null ? JSONObject.NULL : new JSONObject(s.getHitParams()));
                out.put("event_params", s.getEventParams() == null ? JSONObject.NULL : new JSONObject(s.getEventParams()));
            } else {
                TimelineApiResponse t = new TimelineApiResponse(resp);
                out.put("empty", (Object) Boolean.valueOf(t.isEmpty()));
                JSONObject parsed = t.parse();
                out.put("timeline", parsed == null ? JSONObject.NULL : (Object) parsed);
            }
            System.out.println(out.toString());
        }
    }
}
