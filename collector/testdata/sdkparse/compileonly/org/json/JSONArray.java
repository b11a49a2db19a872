// Compile-only stand-in; see JSONException.java.
package org.json;

import java.util.Collection;

public class JSONArray {
    public JSONArray(Collection<?> c) { throw new UnsupportedOperationException("compile-only"); }
    public int length() { throw new UnsupportedOperationException("compile-only"); }
    public String getString(int index) { throw new UnsupportedOperationException("compile-only"); }
}
