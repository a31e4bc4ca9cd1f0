package io.guestdma.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a {@code summary.json} back (for {@link StabilityReport} and the tests) with Jackson, the
 * project's one JSON library: objects become maps, and every number a {@code Double}, as the
 * summary's values are.
 */
final class SummaryJson {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private SummaryJson() {
    }

    /**
     * @param text the JSON text
     * @return its value: maps, lists, strings, booleans, nulls and Doubles
     * @throws IOException if the text is not JSON
     */
    static Object read(String text) throws IOException {
        return doubles(MAPPER.readValue(text, Object.class));
    }

    private static Object doubles(Object value) {
        return switch (value) {
            case Map<?, ?> map -> {
                Map<String, Object> m = new LinkedHashMap<>();
                map.forEach((k, v) -> m.put(String.valueOf(k), doubles(v)));
                yield m;
            }
            case List<?> list -> {
                List<Object> l = new ArrayList<>();
                list.forEach(v -> l.add(doubles(v)));
                yield l;
            }
            case Number n -> n.doubleValue();
            case null -> null;
            default -> value;
        };
    }
}
