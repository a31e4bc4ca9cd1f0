package io.guestdma.machine;

import java.io.IOException;
import java.util.Set;

/**
 * A {@code -device} driver: the name QEMU gives a device model, the properties it takes, and how
 * it puts itself into a {@link PcMachine}. The machine's drivers are listed in
 * {@link DeviceTypes}; adding one is a class implementing this interface and a line there.
 *
 * <p>The machine checks the properties against {@link #properties()} before calling
 * {@link #realize} (an unknown one is QEMU's "Property 'DRIVER.NAME' not found"), merges in the
 * {@code -global DRIVER.PROPERTY=VALUE} defaults, and prefixes any exception message with the
 * {@code -device} argument as QEMU does.
 */
public interface DeviceType {

    /** {@return the driver name, as written after {@code -device}} */
    String name();

    /**
     * {@return the properties the driver takes, besides {@code id} (which every device has); the
     * {@code -global} defaults of the driver must be among them}
     */
    Set<String> properties();

    /**
     * Creates the device and connects it to the machine: claims its drive and its place on a bus,
     * maps its registers, wires its interrupt.
     *
     * @param properties the device's properties, already checked against {@link #properties()}
     * @param machine the parts of the machine being built
     * @throws IllegalArgumentException with QEMU's wording (without the {@code -device ...:}
     *     prefix) if a property value is invalid, the drive is missing or in use, or the place on
     *     the bus is invalid or taken
     * @throws IOException if the device cannot read what it needs from its drive
     */
    void realize(DeviceProperties properties, DeviceContext machine) throws IOException;
}
