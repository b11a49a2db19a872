// Compile-only stand-in; see JSONException.java.
package org.json;

import java.util.Iterator;
import java.util.Map;

public class JSONObject {
    public static final Object NULL = new Object();

    public JSONObject() {}
    public JSONObject(String json) { throw new UnsupportedOperationException("compile-only"); }
    public JSONObject(Map<?, ?> m) { throw new UnsupportedOperationException("compile-only"); }
    public String getString(String name) { throw new UnsupportedOperationException("compile-only"); }
    public long getLong(String name) { throw new UnsupportedOperationException("compile-only"); }
    public JSONArray getJSONArray(String name) { throw new UnsupportedOperationException("compile-only"); }
    public JSONObject getJSONObject(String name) { throw new UnsupportedOperationException("compile-only"); }
    public int length() { throw new UnsupportedOperationException("compile-only"); }
    public Iterator<String> keys() { throw new UnsupportedOperationException("compile-only"); }
    public JSONObject put(String name, Object value) { throw new UnsupportedOperationException("compile-only"); }
}
