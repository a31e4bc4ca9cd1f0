package io.guestdma.machine;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One {@code -device DRIVER[,PROPERTY=VALUE]...} of the command line, as written: which
 * {@link DeviceType} to create and the properties it was given. Nothing is checked against the
 * driver here; {@link PcMachine} does that when it creates the device, as QEMU does.
 *
 * @param driver the driver name, e.g. {@code ide-hd}
 * @param properties the properties in command-line order, {@code id} included
 * @param text the option's argument as written, which QEMU's error messages start with
 */
public record DeviceSpec(String driver, Map<String, String> properties, String text) {

    /**
     * Validates and copies the specification.
     *
     * @throws NullPointerException if a component is null
     * @throws IllegalArgumentException if the driver name is empty
     */
    public DeviceSpec {
        Objects.requireNonNull(driver, "driver");
        Objects.requireNonNull(text, "text");
        if (driver.isEmpty()) {
            throw new IllegalArgumentException("-device needs a driver name");
        }
        properties = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(properties));
    }

    /**
     * Parses the argument of {@code -device}: the driver name, then {@code key=value} items
     * separated by commas ({@code ,,} is a literal comma, as in QEMU). A property given twice
     * keeps its last value, as QEMU's option parser does.
     *
     * @param text the argument, e.g. {@code ide-hd,drive=d0,bus=ide.0,unit=1}
     * @return the specification
     * @throws IllegalArgumentException if the driver name is missing or an item is not key=value
     * @throws NullPointerException if text is null
     */
    public static DeviceSpec parse(String text) {
        Map<String, String> items = KeyValues.parse("-device " + text, text, "driver", true);
        String driver = items.remove("driver");
        if (driver == null || driver.isEmpty()) {
            throw new IllegalArgumentException("-device " + text + ": Parameter 'driver' is missing");
        }
        return new DeviceSpec(driver, items, text);
    }
}
