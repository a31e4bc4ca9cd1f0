/**
 * A toy DMA disk built on guestdma, as an emulator project would write one. Only
 * {@code io.guestdma.memory} calls restricted FFM methods, so on the module path the JVM needs
 * {@code --enable-native-access=io.guestdma.memory}; this module needs no native access itself.
 */
module com.example.toydisk {
    requires io.guestdma.block;
}
