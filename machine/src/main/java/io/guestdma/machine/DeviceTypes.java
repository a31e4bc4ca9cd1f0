package io.guestdma.machine;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@code -device} drivers of the machine, by name. A new device model is one
 * {@link DeviceType} class, added to {@link #ALL}.
 */
public final class DeviceTypes {
    private static final List<DeviceType> ALL = List.of(IdeDeviceType.DISK, IdeDeviceType.CDROM, VirtioBlkPciType.INSTANCE,
            VirtioNetPciType.INSTANCE);
    private static final Map<String, DeviceType> BY_NAME = byName();

    private DeviceTypes() {
    }

    private static Map<String, DeviceType> byName() {
        Map<String, DeviceType> map = new LinkedHashMap<>();
        for (DeviceType t : ALL) {
            if (map.put(t.name(), t) != null) {
                throw new IllegalStateException("two device types are named " + t.name());
            }
        }
        return map;
    }

    /**
     * {@return the driver with that name, if the machine has it}
     *
     * @param name a driver name such as {@code ide-hd}
     */
    public static Optional<DeviceType> find(String name) {
        return Optional.ofNullable(BY_NAME.get(name));
    }

    /** {@return the driver names, in the order they are listed} */
    public static List<String> names() {
        return List.copyOf(BY_NAME.keySet());
    }
}
