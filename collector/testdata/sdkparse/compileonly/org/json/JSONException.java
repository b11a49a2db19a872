// Compile-only stand-ins for the few org.json signatures that the SDK's
// timeline parsers and SdkParse call. The SDK compiles against Maven's
// org.json, whose JSONException is unchecked; Android's (Debian's
// libandroid-json-java), which the test runs them on, declares it checked,
// so javac refuses the SDK's code against it. These classes are only on
// the compile classpath: at run time Android's org.json is loaded.
package org.json;

public class JSONException extends RuntimeException {
    public JSONException(String message) {
        super(message);
    }
}
