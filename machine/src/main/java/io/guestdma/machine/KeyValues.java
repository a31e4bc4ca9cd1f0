package io.guestdma.machine;

import java.util.LinkedHashMap;
import java.util.Map;

/** QEMU's option syntax: {@code a=1,b=2}, {@code ,,} for a literal comma, an optional bare first item. */
final class KeyValues {
    private KeyValues() {
    }

    /**
     * Splits an option argument into its items.
     *
     * @param option how the option is named in error messages, e.g. "-device ide-hd,foo"
     * @param text the argument
     * @param impliedKey the key of a bare first item (QEMU's implied key, e.g. "driver"), or
     *     null if every item must be key=value
     * @param repeats whether a key may be repeated (the last value counts, as for QEMU's
     *     {@code -device}); if not, a repeat is an error
     * @return the items in order
     * @throws IllegalArgumentException if an item is not key=value (other than a bare first one),
     *     or a key is repeated and repeats are not allowed
     */
    static Map<String, String> parse(String option, String text, String impliedKey, boolean repeats) {
        Map<String, String> result = new LinkedHashMap<>();
        int i = 0;
        boolean first = true;
        while (i < text.length()) {
            StringBuilder item = new StringBuilder();
            while (i < text.length()) {
                char c = text.charAt(i);
                if (c == ',') {
                    if (i + 1 < text.length() && text.charAt(i + 1) == ',') {
                        item.append(',');
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                item.append(c);
                i++;
            }
            int eq = item.indexOf("=");
            if (eq < 0 && first && impliedKey != null) {
                result.put(impliedKey, item.toString());
            } else if (eq <= 0) {
                throw new IllegalArgumentException(option + ": '" + item + "' is not key=value");
            } else {
                String key = item.substring(0, eq);
                if (result.put(key, item.substring(eq + 1)) != null && !repeats) {
                    throw new IllegalArgumentException(option + ": option '" + key + "' given twice");
                }
            }
            first = false;
        }
        return result;
    }
}
