package io.guestdma.machine;

import java.util.Map;
import java.util.Objects;

/**
 * The properties of one device being created: the {@code -device} items, over the
 * {@code -global} defaults for its driver. Readers convert values the way QEMU's property types
 * do and fail with QEMU's messages.
 */
public final class DeviceProperties {
    private final String driver;
    private final Map<String, String> values;

    /**
     * Creates the properties.
     *
     * @param driver the driver name, for messages
     * @param values the property values by name
     * @throws NullPointerException if an argument is null
     */
    public DeviceProperties(String driver, Map<String, String> values) {
        this.driver = Objects.requireNonNull(driver, "driver");
        this.values = Map.copyOf(values);
    }

    /** {@return the driver name} */
    public String driver() {
        return driver;
    }

    /**
     * {@return a property's value as written, or null if it was not given}
     *
     * @param name the property
     */
    public String string(String name) {
        return values.get(name);
    }

    /**
     * Reads an integer property (decimal, or hexadecimal with {@code 0x}).
     *
     * @param name the property
     * @param absent the value when the property is not given
     * @return the value
     * @throws IllegalArgumentException with QEMU's "Parameter 'NAME' expects integer" if the value
     *     is not an integer
     */
    public long integer(String name, long absent) {
        String text = values.get(name);
        if (text == null) {
            return absent;
        }
        try {
            return text.startsWith("0x") || text.startsWith("0X")
                    ? Long.parseLong(text.substring(2), 16) : Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Parameter '" + name + "' expects integer");
        }
    }

    @Override
    public String toString() {
        return driver + values;
    }
}
